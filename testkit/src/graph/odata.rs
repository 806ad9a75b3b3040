//! OData query options: `$select`, `$top`, `$skip`, `$orderby`, `$filter`, `$count`, `$search`,
//! `$expand`, `$skiptoken`, and collection answers with `@odata.nextLink`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, link, parse_instant};
use crate::mailstore::content::Address;

/// The type of a filterable property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Bool,
    Date,
}

/// The items of a collection property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemTy {
    /// `categories`: strings.
    Str,
    /// `emailAddresses` of contacts: `{name, address}`.
    EmailAddress,
    /// `toRecipients` etc.: `{emailAddress: {name, address}}`.
    Recipient,
}

/// What the query options may name on one entity type.
#[derive(Debug)]
pub(crate) struct Schema {
    /// `message`, `event`, … (for `microsoft.graph.{entity}` in errors).
    pub entity: &'static str,
    /// Every property `$select` may name.
    pub props: &'static [&'static str],
    /// What an answer holds without `$select`.
    pub default: &'static [&'static str],
    /// Properties (and paths) `$filter` and `$orderby` may name.
    pub filterable: &'static [(&'static str, Ty)],
    /// Collections `$filter` may `any(…)` over.
    pub collections: &'static [(&'static str, ItemTy)],
    /// What `$expand` may name.
    pub expandable: &'static [&'static str],
}

impl Schema {
    fn unknown(&self, path: &str) -> GraphError {
        let first = path.split('/').next().unwrap_or(path);
        graph_errors::unknown_property(first, self.entity)
    }

    fn filterable(&self, path: &str) -> Option<(&'static str, Ty)> {
        self.filterable
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(path))
            .copied()
    }
}

/// A value of a property, for `$filter` and `$orderby`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Date(OffsetDateTime),
    Null,
}

impl Val<'_> {
    pub(crate) fn opt_str(s: Option<&str>) -> Val<'_> {
        s.map_or(Val::Null, |s| Val::Str(Cow::Borrowed(s)))
    }
}

/// An item of a collection property.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item<'a> {
    Str(&'a str),
    Address(&'a Address),
}

/// What `$filter` and `$orderby` read from an entity.
pub(crate) trait Row {
    fn value(&self, path: &str) -> Val<'_>;
    fn items(&self, collection: &str) -> Vec<Item<'_>>;
}

impl Item<'_> {
    fn value(&self, subpath: &str) -> Val<'_> {
        match self {
            Item::Str(s) => Val::Str(Cow::Borrowed(s)),
            Item::Address(a) => match subpath.to_ascii_lowercase().as_str() {
                "address" | "emailaddress/address" => Val::Str(Cow::Borrowed(&a.address)),
                "name" | "emailaddress/name" => Val::Str(Cow::Borrowed(&a.name)),
                _ => Val::Null,
            },
        }
    }
}

fn item_paths(ty: ItemTy) -> &'static [&'static str] {
    match ty {
        ItemTy::Str => &[""],
        ItemTy::EmailAddress => &["address", "name"],
        ItemTy::Recipient => &["emailAddress/address", "emailAddress/name"],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Date(OffsetDateTime),
    Null,
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        path: String,
        op: CmpOp,
        lit: Lit,
    },
    Func {
        func: Func,
        path: String,
        arg: String,
    },
    /// `collection/any(x: …)`; the inner expression's paths are relative to the item.
    Any {
        collection: String,
        inner: Box<Expr>,
    },
}

impl Expr {
    pub(crate) fn matches(&self, row: &dyn Row) -> bool {
        match self {
            Expr::And(a, b) => a.matches(row) && b.matches(row),
            Expr::Or(a, b) => a.matches(row) || b.matches(row),
            Expr::Not(a) => !a.matches(row),
            Expr::Cmp { path, op, lit } => compare(&row.value(path), *op, lit),
            Expr::Func { func, path, arg } => match row.value(path) {
                Val::Str(s) => {
                    let s = s.to_lowercase();
                    let arg = arg.to_lowercase();
                    match func {
                        Func::StartsWith => s.starts_with(&arg),
                        Func::EndsWith => s.ends_with(&arg),
                        Func::Contains => s.contains(&arg),
                    }
                }
                _ => false,
            },
            Expr::Any { collection, inner } => row
                .items(collection)
                .iter()
                .any(|item| inner.matches(&ItemRow(*item))),
        }
    }

    /// Whether this filter only bounds `path` from below (`ge`/`gt`), possibly with `and`.
    pub(crate) fn only_lower_bounds(&self, path: &str) -> bool {
        match self {
            Expr::And(a, b) => a.only_lower_bounds(path) && b.only_lower_bounds(path),
            Expr::Cmp { path: p, op, .. } => {
                p.eq_ignore_ascii_case(path) && matches!(op, CmpOp::Ge | CmpOp::Gt)
            }
            _ => false,
        }
    }
}

struct ItemRow<'a>(Item<'a>);

impl Row for ItemRow<'_> {
    fn value(&self, path: &str) -> Val<'_> {
        self.0.value(path)
    }

    fn items(&self, _collection: &str) -> Vec<Item<'_>> {
        Vec::new()
    }
}

fn compare(value: &Val<'_>, op: CmpOp, lit: &Lit) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (value, lit) {
        (Val::Str(a), Lit::Str(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Date(a), Lit::Date(b)) => Some(a.cmp(b)),
        (Val::Null, Lit::Null) => Some(Ordering::Equal),
        (_, Lit::Null) | (Val::Null, _) => None,
        _ => None,
    };
    match (op, ordering) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Ne, None) => true,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        _ => false,
    }
}

// ----- $filter parser -----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Str(String),
    Word(String),
}

fn tokenize(input: &str) -> GraphResult<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            s.push('\'');
                        } else {
                            closed = true;
                            break;
                        }
                    } else {
                        s.push(c);
                    }
                }
                if !closed {
                    return Err(graph_errors::invalid_filter());
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    if tokens.len() > 200 {
        return Err(graph_errors::invalid_filter());
    }
    Ok(tokens)
}

struct Parser<'s> {
    tokens: Vec<Token>,
    pos: usize,
    schema: &'s Schema,
    /// Inside `any(x: …)`: the variable and the item type.
    lambda: Option<(String, ItemTy)>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> GraphResult<Expr> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(graph_errors::invalid_filter());
        }
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> GraphResult<Expr> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> GraphResult<Expr> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(graph_errors::invalid_filter()),
                }
            }
            Some(Token::Word(word)) => self.after_word(word),
            _ => Err(graph_errors::invalid_filter()),
        }
    }

    fn after_word(&mut self, word: String) -> GraphResult<Expr> {
        let lower = word.to_ascii_lowercase();
        let func = match lower.as_str() {
            "startswith" => Some(Func::StartsWith),
            "endswith" => Some(Func::EndsWith),
            "contains" => Some(Func::Contains),
            _ => None,
        };
        if let Some(func) = func
            && self.peek() == Some(&Token::Open)
        {
            self.pos += 1;
            let Some(Token::Word(path)) = self.next() else {
                return Err(graph_errors::invalid_filter());
            };
            let (path, ty) = self.resolve(&path)?;
            if ty != Ty::Str || self.next() != Some(Token::Comma) {
                return Err(graph_errors::invalid_filter());
            }
            let Some(Token::Str(arg)) = self.next() else {
                return Err(graph_errors::invalid_filter());
            };
            if self.next() != Some(Token::Close) {
                return Err(graph_errors::invalid_filter());
            }
            return Ok(Expr::Func { func, path, arg });
        }
        if let Some(collection) = lower.strip_suffix("/any")
            && self.peek() == Some(&Token::Open)
            && self.lambda.is_none()
        {
            self.pos += 1;
            let Some((name, ty)) = self
                .schema
                .collections
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(collection))
                .copied()
            else {
                return Err(self.schema.unknown(collection));
            };
            // `a:a/address eq 'x'`: the variable, then the first operand.
            let Some(Token::Word(binding)) = self.peek().cloned() else {
                return Err(graph_errors::invalid_filter());
            };
            let Some((var, first)) = binding.split_once(':') else {
                return Err(graph_errors::invalid_filter());
            };
            if var.is_empty() || first.is_empty() {
                return Err(graph_errors::invalid_filter());
            }
            if let Some(t) = self.tokens.get_mut(self.pos) {
                *t = Token::Word(first.to_string());
            }
            self.lambda = Some((var.to_string(), ty));
            let inner = self.or()?;
            self.lambda = None;
            if self.next() != Some(Token::Close) {
                return Err(graph_errors::invalid_filter());
            }
            return Ok(Expr::Any {
                collection: name.to_string(),
                inner: Box::new(inner),
            });
        }
        // `path op literal`
        let (path, ty) = self.resolve(&word)?;
        let op = match self.next() {
            Some(Token::Word(op)) => match op.to_ascii_lowercase().as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                _ => return Err(graph_errors::invalid_filter()),
            },
            _ => return Err(graph_errors::invalid_filter()),
        };
        let lit = match (self.next(), ty) {
            (Some(Token::Word(w)), _) if w.eq_ignore_ascii_case("null") => Lit::Null,
            (Some(Token::Word(w)), Ty::Bool) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            (Some(Token::Word(w)), Ty::Bool) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            (Some(Token::Word(w) | Token::Str(w)), Ty::Date) => {
                Lit::Date(parse_instant(&w).ok_or_else(graph_errors::invalid_filter)?)
            }
            (Some(Token::Str(s)), Ty::Str) => Lit::Str(s),
            _ => return Err(graph_errors::invalid_filter()),
        };
        Ok(Expr::Cmp { path, op, lit })
    }

    /// A property path: known to the schema, or inside a lambda, relative to the item.
    fn resolve(&self, path: &str) -> GraphResult<(String, Ty)> {
        if let Some((var, ty)) = &self.lambda {
            let rest = if path == var {
                ""
            } else if let Some(rest) = path
                .strip_prefix(var.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                rest
            } else {
                return Err(graph_errors::invalid_filter());
            };
            return item_paths(*ty)
                .iter()
                .find(|p| p.eq_ignore_ascii_case(rest))
                .map(|p| ((*p).to_string(), Ty::Str))
                .ok_or_else(|| self.schema.unknown(rest));
        }
        self.schema
            .filterable(path)
            .map(|(p, ty)| (p.to_string(), ty))
            .ok_or_else(|| self.schema.unknown(path))
    }
}

pub(crate) fn parse_filter(input: &str, schema: &Schema) -> GraphResult<Expr> {
    let mut parser = Parser {
        tokens: tokenize(input)?,
        pos: 0,
        schema,
        lambda: None,
        depth: 0,
    };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(graph_errors::invalid_filter());
    }
    Ok(expr)
}

// ----- the query -----

/// The query options of one request, checked against a schema.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// Canonical property names; `None`: the default set.
    pub select: Option<Vec<&'static str>>,
    pub top: Option<usize>,
    pub skip: usize,
    pub count: bool,
    pub filter: Option<Expr>,
    /// (property, descending)
    pub orderby: Vec<(&'static str, bool)>,
    pub search: Option<String>,
    pub expand: Vec<&'static str>,
    pub skiptoken: Option<String>,
}

const KNOWN_OPTIONS: &[&str] = &[
    "select",
    "top",
    "skip",
    "count",
    "filter",
    "orderby",
    "search",
    "expand",
    "skiptoken",
    "deltatoken",
    "format",
];

pub(crate) fn parse_query(req: &Req, schema: &Schema) -> GraphResult<Query> {
    for (k, _) in &req.query {
        if let Some(bare) = k.strip_prefix('$')
            && !KNOWN_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(bare))
        {
            return Err(graph_errors::bad_request(format!(
                "Query option '{k}' is not supported."
            )));
        }
    }
    let mut q = Query::default();
    if let Some(select) = req.option("$select") {
        q.select = Some(parse_select(select, schema)?);
    }
    if let Some(top) = req.option("$top") {
        let n: usize = top
            .trim()
            .parse()
            .map_err(|_| graph_errors::bad_request(format!("Invalid $top value '{top}'.")))?;
        q.top = Some(n.clamp(1, 1000));
    }
    if let Some(skip) = req.option("$skip") {
        q.skip = skip
            .trim()
            .parse()
            .map_err(|_| graph_errors::bad_request(format!("Invalid $skip value '{skip}'.")))?;
    }
    if let Some(count) = req.option("$count") {
        q.count = match count.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(graph_errors::bad_request(format!(
                    "Invalid $count value '{count}'."
                )));
            }
        };
    }
    if let Some(filter) = req.option("$filter").filter(|f| !f.trim().is_empty()) {
        q.filter = Some(parse_filter(filter, schema)?);
    }
    if let Some(orderby) = req.option("$orderby") {
        for part in orderby.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut words = part.split_whitespace();
            let prop = words.next().unwrap_or_default();
            let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => {
                    return Err(graph_errors::bad_request(format!(
                        "Invalid $orderby '{part}'."
                    )));
                }
            };
            let (canonical, _) = schema
                .filterable(prop)
                .ok_or_else(|| schema.unknown(prop))?;
            q.orderby.push((canonical, descending));
        }
    }
    if let Some(search) = req.option("$search") {
        q.search = Some(search.trim().trim_matches('"').to_string());
    }
    if let Some(expand) = req.option("$expand") {
        for part in expand.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let name = schema
                .expandable
                .iter()
                .find(|e| e.eq_ignore_ascii_case(part))
                .ok_or_else(|| schema.unknown(part))?;
            q.expand.push(name);
        }
    }
    q.skiptoken = req.option("$skiptoken").map(str::to_string);
    Ok(q)
}

pub(crate) fn parse_select(select: &str, schema: &Schema) -> GraphResult<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in select.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let canonical = schema
            .props
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| graph_errors::unknown_property(name, schema.entity))?;
        if !out.contains(canonical) {
            out.push(*canonical);
        }
    }
    Ok(out)
}

impl Query {
    /// Whether an answer includes `prop`.
    pub(crate) fn wants(&self, schema: &Schema, prop: &str) -> bool {
        match &self.select {
            Some(select) => prop == "id" || select.contains(&prop),
            None => schema.default.contains(&prop),
        }
    }

    /// The first item of this page and the page size: `$skiptoken` (or `$skip`), then `$top`
    /// or `Prefer: odata.maxpagesize` or `default`.
    pub(crate) fn page(&self, ctx: &Ctx, default: usize) -> GraphResult<(usize, usize)> {
        let offset = match &self.skiptoken {
            Some(token) => decode_skip(token)?,
            None => self.skip,
        };
        let size = self
            .top
            .or(ctx.prefer.max_page_size)
            .unwrap_or(default)
            .clamp(1, 1000);
        Ok((offset, size))
    }
}

pub(crate) fn encode_skip(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("skip:{offset}"))
}

fn decode_skip(token: &str) -> GraphResult<usize> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("skip:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| graph_errors::bad_request("The $skiptoken is invalid."))
}

/// A page of a collection: `value`, `@odata.count` when asked, `@odata.nextLink` when more
/// items follow.
pub(crate) fn collection(
    ctx: &Ctx,
    req: &Req,
    context: &str,
    value: Vec<Value>,
    count: Option<usize>,
    next_offset: Option<usize>,
) -> Value {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}/$metadata#{context}", ctx.graph_url()).into(),
    );
    if let Some(count) = count {
        body.insert("@odata.count".into(), count.into());
    }
    body.insert("value".into(), Value::Array(value));
    if let Some(next) = next_offset {
        body.insert(
            "@odata.nextLink".into(),
            link(ctx, req, &[("$skiptoken", &encode_skip(next))]).into(),
        );
    }
    Value::Object(body)
}

/// Sorts rows by the `$orderby` keys (stable: ties keep their order).
pub(crate) fn sort_rows<T: Row>(rows: &mut [T], orderby: &[(&'static str, bool)]) {
    if orderby.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for (prop, descending) in orderby {
            let ordering = order(&a.value(prop), &b.value(prop));
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
}

fn order(a: &Val<'_>, b: &Val<'_>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Val::Str(a), Val::Str(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
        (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
        (Val::Date(a), Val::Date(b)) => a.cmp(b),
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Less,
        (_, Val::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    static SCHEMA: Schema = Schema {
        entity: "message",
        props: &["id", "subject", "isRead"],
        default: &["id", "subject"],
        filterable: &[
            ("isRead", Ty::Bool),
            ("subject", Ty::Str),
            ("receivedDateTime", Ty::Date),
            ("from/emailAddress/address", Ty::Str),
        ],
        collections: &[
            ("categories", ItemTy::Str),
            ("toRecipients", ItemTy::Recipient),
        ],
        expandable: &[],
    };

    struct M {
        read: bool,
        subject: &'static str,
        received: OffsetDateTime,
        from: &'static str,
        categories: Vec<&'static str>,
        to: Vec<Address>,
    }

    impl Row for M {
        fn value(&self, path: &str) -> Val<'_> {
            match path {
                "isRead" => Val::Bool(self.read),
                "subject" => Val::Str(Cow::Borrowed(self.subject)),
                "receivedDateTime" => Val::Date(self.received),
                "from/emailAddress/address" => Val::Str(Cow::Borrowed(self.from)),
                _ => Val::Null,
            }
        }
        fn items(&self, collection: &str) -> Vec<Item<'_>> {
            match collection {
                "categories" => self.categories.iter().map(|c| Item::Str(c)).collect(),
                "toRecipients" => self.to.iter().map(Item::Address).collect(),
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn filters_parse_and_match_with_and_or_not_functions_and_lambdas() {
        let m = M {
            read: false,
            subject: "Quarterly Report",
            received: datetime!(2026-11-02 09:00 UTC),
            from: "Megan@contoso.onmicrosoft.com",
            categories: vec!["Red category"],
            to: vec![Address::new("Adele", "adele@contoso.onmicrosoft.com")],
        };
        let yes = [
            "isRead eq false",
            "IsRead eq false and receivedDateTime ge 2026-11-01T00:00:00Z",
            "from/emailAddress/address eq 'megan@contoso.onmicrosoft.com'",
            "startswith(subject,'quarterly')",
            "not (isRead eq true) or subject eq 'x'",
            "categories/any(c:c eq 'red category')",
            "toRecipients/any(r:r/emailAddress/address eq 'adele@contoso.onmicrosoft.com')",
            "subject eq 'it''s' or isRead ne true",
        ];
        for f in yes {
            assert!(parse_filter(f, &SCHEMA).unwrap().matches(&m), "{f}");
        }
        let no = [
            "isRead eq true",
            "receivedDateTime lt 2026-11-01",
            "contains(subject,'budget')",
        ];
        for f in no {
            assert!(!parse_filter(f, &SCHEMA).unwrap().matches(&m), "{f}");
        }
        let e = parse_filter("size gt 5", &SCHEMA).unwrap_err();
        assert_eq!(e.code, "RequestBroker--ParseUri");
        assert_eq!(
            e.message,
            "Could not find a property named 'size' on type 'microsoft.graph.message'."
        );
        for bad in [
            "isRead eq",
            "isRead eq 'x'",
            "(isRead eq true",
            "subject eq 'open",
            "))",
            "isRead eq true true",
        ] {
            assert_eq!(
                parse_filter(bad, &SCHEMA).unwrap_err().code,
                "ErrorInvalidUrlQueryFilter",
                "{bad}"
            );
        }
        let deep = "(".repeat(100) + "isRead eq true" + &")".repeat(100);
        assert!(parse_filter(&deep, &SCHEMA).is_err());
    }

    #[test]
    fn skip_tokens_round_trip_and_bad_ones_are_refused() {
        assert_eq!(decode_skip(&encode_skip(30)).unwrap(), 30);
        assert!(decode_skip("garbage!").is_err());
    }
}
