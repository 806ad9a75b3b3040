//! Fault injection shared by the mocks: a plan of rules, each matching some requests (method,
//! path) of one service and injecting a fault into them — the next N matching requests, or
//! "chaos": each matching request with probability `p`, the kind drawn from a weighted mix, from
//! a seeded generator (the same seed and request order give the same faults).
//!
//! The plan is set from Rust ([`crate::MockMicrosoft::add_fault`]), from `exgate-mock` flags
//! (`--fault`, `--chaos`, `--faults`) and at run time through `POST /_mock/faults`. Counters of
//! what was injected are readable from Rust ([`Faults::report`]) and `GET /_mock/faults`.
//!
//! This module knows nothing of Entra or Graph: each mock asks [`Faults::pick`] and applies the
//! kind in its own wire format.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

/// Which mock a rule applies to.
/// The older, simpler switch: a failure injected into the next token requests
/// (`MockMicrosoft::fail_token_requests`) or Graph requests (`fail_graph_requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: retry_after_secs`.
    TooManyRequests { retry_after_secs: u64 },
    /// That HTTP status (e.g. 500 or 503), `error=temporarily_unavailable`.
    ServerError { status: u16 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Microsoft Graph (`/graph/v1.0/…`; paths are matched after `/v1.0`). The default.
    #[default]
    Graph,
    /// The Entra ID endpoints (paths are matched from the root, e.g. `/{tenant}/oauth2/v2.0/token`).
    Entra,
    /// EWS (`/EWS/Exchange.asmx`; the path is matched as `/EWS/Exchange.asmx/{Operation}`, e.g.
    /// `/EWS/Exchange.asmx/FindItem`). `429` answers `ErrorServerBusy` (a SOAP fault, HTTP 500)
    /// with `BackOffMilliseconds` = `retry_after` seconds × 1000; `truncated_json` cuts the
    /// SOAP answer in the middle; `json_array` answers a body that is not XML.
    Ews,
}

/// What to do to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum FaultKind {
    /// 429 (Graph `ApplicationThrottled`, Entra AADSTS90055) with `Retry-After` sent verbatim
    /// (any text: `"1"`, `"3600"`, `"18446744073709551615"`, `"soon"`); none when absent.
    #[serde(rename = "429")]
    TooManyRequests {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// 503 (`ServiceUnavailable`), with `Retry-After` when given.
    #[serde(rename = "503")]
    ServiceUnavailable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// 504 (`GatewayTimeout`).
    #[serde(rename = "504")]
    GatewayTimeout,
    /// The connection is closed (TCP RST) without any answer; the request is not executed.
    #[serde(rename = "reset")]
    Reset,
    /// The request IS executed (the draft created, the mail sent), then the connection is reset
    /// before the answer is written.
    #[serde(rename = "reset_after")]
    ResetAfter,
    /// Waits `ms` milliseconds (tokio time) before answering normally.
    #[serde(rename = "delay")]
    Delay { ms: u64 },
    /// A JSON answer's body is replaced by `[]` (status and headers unchanged).
    #[serde(rename = "json_array")]
    JsonArray,
    /// A JSON answer's body is cut in the middle.
    #[serde(rename = "truncated_json")]
    TruncatedJson,
    /// A MIME answer (`…/messages/{id}/$value`, also as a `$batch` item) carries JSON instead.
    #[serde(rename = "not_mime")]
    NotMime,
    /// A page's `@odata.nextLink` points at the same page again.
    #[serde(rename = "repeat_next_link")]
    RepeatNextLink,
}

impl FaultKind {
    /// The kind's name, as in JSON and in the counters: `429`, `reset`, `delay`, ….
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::TooManyRequests { .. } => "429",
            FaultKind::ServiceUnavailable { .. } => "503",
            FaultKind::GatewayTimeout => "504",
            FaultKind::Reset => "reset",
            FaultKind::ResetAfter => "reset_after",
            FaultKind::Delay { .. } => "delay",
            FaultKind::JsonArray => "json_array",
            FaultKind::TruncatedJson => "truncated_json",
            FaultKind::NotMime => "not_mime",
            FaultKind::RepeatNextLink => "repeat_next_link",
        }
    }

    /// Applied after the request was executed (the others before).
    pub fn is_after(&self) -> bool {
        matches!(
            self,
            FaultKind::ResetAfter
                | FaultKind::JsonArray
                | FaultKind::TruncatedJson
                | FaultKind::NotMime
                | FaultKind::RepeatNextLink
        )
    }

    /// Parses `KIND[=VALUE]` as the `exgate-mock` flags write it: `429=3600`, `503`, `503=5`,
    /// `504`, `reset`, `reset_after`, `delay=1500`, `json_array`, `truncated_json`, `not_mime`,
    /// `repeat_next_link`.
    pub fn parse(text: &str) -> Result<FaultKind, FaultError> {
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.to_string())),
            None => (text.trim(), None),
        };
        let no_value = |kind: FaultKind| match &value {
            None => Ok(kind),
            Some(_) => Err(FaultError::Invalid(format!(
                "fault `{name}` takes no value"
            ))),
        };
        let kind = match name {
            "429" => FaultKind::TooManyRequests { retry_after: value },
            "503" => FaultKind::ServiceUnavailable { retry_after: value },
            "504" => no_value(FaultKind::GatewayTimeout)?,
            "reset" => no_value(FaultKind::Reset)?,
            "reset_after" => no_value(FaultKind::ResetAfter)?,
            "json_array" => no_value(FaultKind::JsonArray)?,
            "truncated_json" => no_value(FaultKind::TruncatedJson)?,
            "not_mime" => no_value(FaultKind::NotMime)?,
            "repeat_next_link" => no_value(FaultKind::RepeatNextLink)?,
            "delay" => {
                let ms = value
                    .as_deref()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| {
                        FaultError::Invalid("fault `delay` needs milliseconds: delay=1500".into())
                    })?;
                FaultKind::Delay { ms }
            }
            other => {
                return Err(FaultError::Invalid(format!(
                    "unknown fault kind `{other}` (expected 429, 503, 504, reset, reset_after, delay, json_array, truncated_json, not_mime or repeat_next_link)"
                )));
            }
        };
        kind.validate()?;
        Ok(kind)
    }

    fn validate(&self) -> Result<(), FaultError> {
        match self {
            FaultKind::TooManyRequests {
                retry_after: Some(v),
            }
            | FaultKind::ServiceUnavailable {
                retry_after: Some(v),
            } if !v
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) =>
            {
                Err(FaultError::Invalid(format!(
                    "retry_after `{}` cannot be sent as an HTTP header value",
                    v.escape_debug()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Which requests a rule applies to; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    #[serde(default)]
    pub service: Service,
    /// HTTP method, any case (`POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A substring of the path, any case (`/messages`). For Graph the path is the one after
    /// `/v1.0` (`/me/messages/AAM…/send`); a `$batch` envelope is matched only by a rule whose
    /// `path` or `path_prefix` names `$batch`, otherwise its items are matched one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A prefix of the path, any case (`/users/adele@contoso.onmicrosoft.com/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// What a rule sees: `items` (default) plain requests and each `$batch` item, as if sent
    /// alone; `http` every HTTP request as a proxy in front of the service would — plain
    /// requests and whole `$batch` envelopes, never the items inside one.
    #[serde(default, skip_serializing_if = "FaultScope::is_items")]
    pub scope: FaultScope,
}

/// Which requests a rule sees (see [`FaultMatch::scope`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    #[default]
    Items,
    Http,
}

impl FaultScope {
    fn is_items(&self) -> bool {
        *self == Self::Items
    }
}

impl FaultMatch {
    fn names_batch(&self) -> bool {
        [&self.path, &self.path_prefix]
            .into_iter()
            .flatten()
            .any(|p| p.to_ascii_lowercase().contains("$batch"))
    }

    fn matches(&self, service: Service, method: &str, path: &str, item: bool) -> bool {
        let lower = path.to_ascii_lowercase();
        let is_batch = service == Service::Graph && lower.trim_matches('/') == "$batch";
        let seen = match self.scope {
            FaultScope::Items => is_batch == self.names_batch(),
            FaultScope::Http => !item,
        };
        self.service == service
            && seen
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.trim().eq_ignore_ascii_case(method))
            && self
                .path
                .as_deref()
                .is_none_or(|p| lower.contains(&p.to_ascii_lowercase()))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| lower.starts_with(&p.to_ascii_lowercase()))
    }
}

/// One kind of a chaos mix, with its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedFault {
    #[serde(default = "one")]
    pub weight: u32,
    pub fault: FaultKind,
}

fn one() -> u32 {
    1
}

/// Random faults: each matching request fails with `probability`, the kind drawn from `mix` by
/// weight. Deterministic for a given `seed` and request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    pub probability: f64,
    #[serde(default)]
    pub seed: u64,
    pub mix: Vec<WeightedFault>,
}

/// One rule of a plan: `fault` for the next `times` matching requests (default 1), or `chaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default, rename = "match")]
    pub matcher: FaultMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<Chaos>,
}

impl FaultRule {
    /// `kind` for the next `times` matching requests (by default every Graph request).
    pub fn next(times: u64, kind: FaultKind) -> FaultRule {
        FaultRule {
            matcher: FaultMatch::default(),
            fault: Some(kind),
            times: Some(times),
            chaos: None,
        }
    }

    /// Each matching request fails with `probability`, with a kind drawn from `mix`
    /// (`(weight, kind)`), from a generator seeded with `seed`.
    pub fn chaos(probability: f64, seed: u64, mix: Vec<(u32, FaultKind)>) -> FaultRule {
        FaultRule {
            matcher: FaultMatch::default(),
            fault: None,
            times: None,
            chaos: Some(Chaos {
                probability,
                seed,
                mix: mix
                    .into_iter()
                    .map(|(weight, fault)| WeightedFault { weight, fault })
                    .collect(),
            }),
        }
    }

    /// Only requests with this HTTP method.
    pub fn method(mut self, method: &str) -> Self {
        self.matcher.method = Some(method.to_string());
        self
    }

    /// Only paths containing `part` (any case).
    pub fn path(mut self, part: &str) -> Self {
        self.matcher.path = Some(part.to_string());
        self
    }

    /// Only paths starting with `prefix` (any case).
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.matcher.path_prefix = Some(prefix.to_string());
        self
    }

    /// Sees requests as a proxy in front of the service does: plain requests and whole `$batch`
    /// envelopes, never the items inside one ([`FaultScope::Http`]).
    pub fn as_proxy(mut self) -> Self {
        self.matcher.scope = FaultScope::Http;
        self
    }

    /// Applies to that mock (default Graph).
    pub fn service(mut self, service: Service) -> Self {
        self.matcher.service = service;
        self
    }

    /// Checks the rule: exactly one of `fault` and `chaos`, a probability in 0..=1, a mix with
    /// a positive total weight, header-safe `Retry-After` values.
    pub fn validate(&self) -> Result<(), FaultError> {
        let invalid = |m: &str| Err(FaultError::Invalid(m.to_string()));
        match (&self.fault, &self.chaos) {
            (Some(kind), None) => kind.validate(),
            (None, Some(chaos)) => {
                if self.times.is_some() {
                    return invalid("a chaos rule takes no `times`");
                }
                if !(0.0..=1.0).contains(&chaos.probability) {
                    return invalid("chaos `probability` must be between 0 and 1");
                }
                if chaos.mix.iter().map(|w| u64::from(w.weight)).sum::<u64>() == 0 {
                    return invalid("chaos `mix` needs at least one kind with a positive weight");
                }
                chaos.mix.iter().try_for_each(|w| w.fault.validate())
            }
            _ => invalid("a rule needs either `fault` (with optional `times`) or `chaos`"),
        }
    }

    /// Parses the `--fault` flag: `KIND[=VALUE][,times=N][,method=M][,path=P][,prefix=P][,service=graph|entra]`.
    pub fn parse_flag(text: &str) -> Result<FaultRule, FaultError> {
        let mut parts = text.split(',');
        let kind = FaultKind::parse(parts.next().unwrap_or_default())?;
        let mut rule = FaultRule::next(1, kind);
        for option in parts {
            if let Some(n) = option.strip_prefix("times=") {
                rule.times =
                    Some(n.trim().parse().map_err(|_| {
                        FaultError::Invalid(format!("times `{n}` is not a number"))
                    })?);
            } else {
                rule.matcher = parse_match(rule.matcher, option)?;
            }
        }
        rule.validate()?;
        Ok(rule)
    }

    /// Parses the `--chaos` flag: `P,seed=N,mix=KIND[=VALUE][*WEIGHT]+…[,method=M][,path=P][,prefix=P][,service=S]`,
    /// e.g. `0.2,seed=7,mix=429=1*3+503+reset`.
    pub fn parse_chaos_flag(text: &str) -> Result<FaultRule, FaultError> {
        let mut parts = text.split(',');
        let p = parts.next().unwrap_or_default();
        let probability: f64 = p
            .trim()
            .parse()
            .map_err(|_| FaultError::Invalid(format!("chaos probability `{p}` is not a number")))?;
        let mut rule = FaultRule::chaos(probability, 0, Vec::new());
        for option in parts {
            if let Some(seed) = option.strip_prefix("seed=") {
                let seed = seed.trim().parse().map_err(|_| {
                    FaultError::Invalid(format!("chaos seed `{seed}` is not a number"))
                })?;
                if let Some(chaos) = &mut rule.chaos {
                    chaos.seed = seed;
                }
            } else if let Some(mix) = option.strip_prefix("mix=") {
                for item in mix.split('+') {
                    let (kind, weight) = match item.rsplit_once('*') {
                        Some((k, w)) => (
                            k,
                            w.trim().parse().map_err(|_| {
                                FaultError::Invalid(format!("chaos weight `{w}` is not a number"))
                            })?,
                        ),
                        None => (item, 1),
                    };
                    let fault = FaultKind::parse(kind)?;
                    if let Some(chaos) = &mut rule.chaos {
                        chaos.mix.push(WeightedFault { weight, fault });
                    }
                }
            } else {
                rule.matcher = parse_match(rule.matcher, option)?;
            }
        }
        rule.validate()?;
        Ok(rule)
    }
}

fn parse_match(mut m: FaultMatch, option: &str) -> Result<FaultMatch, FaultError> {
    let (key, value) = option
        .split_once('=')
        .ok_or_else(|| FaultError::Invalid(format!("`{option}` is not KEY=VALUE")))?;
    match key.trim() {
        "method" => m.method = Some(value.trim().to_string()),
        "path" => m.path = Some(value.to_string()),
        "prefix" => m.path_prefix = Some(value.to_string()),
        "scope" => {
            m.scope = match value.trim() {
                "items" => FaultScope::Items,
                "http" => FaultScope::Http,
                other => {
                    return Err(FaultError::Invalid(format!(
                        "scope `{other}` is neither items nor http"
                    )));
                }
            }
        }
        "service" => {
            m.service = match value.trim() {
                "graph" => Service::Graph,
                "entra" => Service::Entra,
                "ews" => Service::Ews,
                other => {
                    return Err(FaultError::Invalid(format!(
                        "service `{other}` is none of graph, entra, ews"
                    )));
                }
            }
        }
        other => {
            return Err(FaultError::Invalid(format!(
                "unknown fault option `{other}` (expected times, method, path, prefix, scope, service)"
            )));
        }
    }
    Ok(m)
}

/// A list of rules, the JSON body of `POST /_mock/faults` and of `exgate-mock --faults FILE`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// Reads `{"rules":[…]}` or a single rule object.
    pub fn from_json(text: &str) -> Result<FaultPlan, FaultError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FaultError::Invalid(e.to_string()))?;
        let plan = if value.get("rules").is_some() {
            serde_json::from_value(value)
        } else {
            serde_json::from_value(value).map(|rule| FaultPlan { rules: vec![rule] })
        }
        .map_err(|e| FaultError::Invalid(e.to_string()))?;
        plan.rules.iter().try_for_each(FaultRule::validate)?;
        Ok(plan)
    }
}

/// A rule or plan that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("invalid fault rule: {0}")]
    Invalid(String),
}

/// One rule as it stands: how many injections are left and how many were made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// For a `times` rule, the injections left (0: spent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    pub injected: u64,
}

/// What `GET /_mock/faults` answers: the rules and the faults injected so far, by kind name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultReport {
    pub rules: Vec<RuleReport>,
    /// Injected faults by kind name (`429`, `reset`, …), since the last clear.
    pub injected: BTreeMap<String, u64>,
    /// All injected faults.
    pub total: u64,
}

impl FaultReport {
    /// How many faults of that kind name (`"429"`, `"reset"`, …) were injected.
    pub fn count(&self, kind: &str) -> u64 {
        self.injected.get(kind).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct Active {
    rule: FaultRule,
    remaining: Option<u64>,
    injected: u64,
    rng: u64,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<Active>,
    injected: BTreeMap<String, u64>,
}

/// A fault picked for one request; the mock reports back whether it applied.
#[derive(Debug, Clone)]
pub struct Picked {
    pub kind: FaultKind,
    rule: usize,
    generation: u64,
}

/// The live fault plan of a mock server. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<(u64, Inner)>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, (u64, Inner)> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds rules after the existing ones (a request takes the first rule that fires).
    pub fn add(&self, plan: FaultPlan) -> Result<(), FaultError> {
        plan.rules.iter().try_for_each(FaultRule::validate)?;
        let mut guard = self.lock();
        for rule in plan.rules {
            let rng = rule.chaos.as_ref().map_or(1, |c| seed_state(c.seed));
            guard.1.rules.push(Active {
                remaining: rule.fault.as_ref().map(|_| rule.times.unwrap_or(1)),
                rule,
                injected: 0,
                rng,
            });
        }
        Ok(())
    }

    /// Removes every rule and resets the counters.
    pub fn clear(&self) {
        let mut guard = self.lock();
        guard.0 = guard.0.wrapping_add(1);
        guard.1 = Inner::default();
    }

    /// The rules and counters.
    pub fn report(&self) -> FaultReport {
        let guard = self.lock();
        FaultReport {
            rules: guard
                .1
                .rules
                .iter()
                .map(|a| RuleReport {
                    rule: a.rule.clone(),
                    remaining: a.remaining,
                    injected: a.injected,
                })
                .collect(),
            total: guard.1.injected.values().sum(),
            injected: guard.1.injected.clone(),
        }
    }

    /// The fault for this request, if a rule fires. A `times` rule is used up by it; call
    /// [`Faults::injected`] once the fault was applied, or [`Faults::not_applicable`] when the
    /// answer had nothing to spoil (e.g. no `@odata.nextLink`), which gives the use back.
    pub fn pick(&self, service: Service, method: &str, path: &str) -> Option<Picked> {
        self.pick_for(service, method, path, false)
    }

    /// [`Faults::pick`] for a request that is (`item`) or is not an item of a `$batch`.
    pub fn pick_for(
        &self,
        service: Service,
        method: &str,
        path: &str,
        item: bool,
    ) -> Option<Picked> {
        let mut guard = self.lock();
        let generation = guard.0;
        for (i, active) in guard.1.rules.iter_mut().enumerate() {
            if !active.rule.matcher.matches(service, method, path, item) {
                continue;
            }
            if let Some(remaining) = &mut active.remaining {
                if *remaining == 0 {
                    continue;
                }
                *remaining -= 1;
                if let Some(kind) = active.rule.fault.clone() {
                    return Some(Picked {
                        kind,
                        rule: i,
                        generation,
                    });
                }
            } else if let Some(chaos) = &active.rule.chaos {
                let roll = unit(next(&mut active.rng));
                if roll >= chaos.probability {
                    continue;
                }
                let total: u64 = chaos.mix.iter().map(|w| u64::from(w.weight)).sum();
                if total == 0 {
                    continue;
                }
                let mut draw = next(&mut active.rng) % total;
                for w in &chaos.mix {
                    let weight = u64::from(w.weight);
                    if draw < weight {
                        return Some(Picked {
                            kind: w.fault.clone(),
                            rule: i,
                            generation,
                        });
                    }
                    draw -= weight;
                }
            }
        }
        None
    }

    /// Counts an applied fault.
    pub fn injected(&self, picked: &Picked) {
        let mut guard = self.lock();
        if guard.0 != picked.generation {
            return;
        }
        *guard
            .1
            .injected
            .entry(picked.kind.name().to_string())
            .or_default() += 1;
        if let Some(active) = guard.1.rules.get_mut(picked.rule) {
            active.injected += 1;
        }
    }

    /// Gives a `times` rule its use back: the fault did not apply to this answer.
    pub fn not_applicable(&self, picked: &Picked) {
        let mut guard = self.lock();
        if guard.0 != picked.generation {
            return;
        }
        if let Some(Some(remaining)) = guard.1.rules.get_mut(picked.rule).map(|a| &mut a.remaining)
        {
            *remaining += 1;
        }
    }
}

fn seed_state(seed: u64) -> u64 {
    // splitmix64 of the seed, never zero (xorshift's fixed point).
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// xorshift64*.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A value in `[0, 1)` from 53 random bits.
fn unit(x: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = (x >> 11) as f64;
    v / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_rules_and_reject_nonsense() {
        let rule =
            FaultRule::parse_flag("429=18446744073709551615,times=3,method=POST,path=/messages")
                .unwrap();
        assert_eq!(
            rule.fault,
            Some(FaultKind::TooManyRequests {
                retry_after: Some("18446744073709551615".into())
            })
        );
        assert_eq!(rule.times, Some(3));
        assert_eq!(rule.matcher.method.as_deref(), Some("POST"));
        let rule =
            FaultRule::parse_chaos_flag("0.25,seed=7,mix=429=1*3+503+reset,service=entra").unwrap();
        let chaos = rule.chaos.unwrap();
        assert_eq!(chaos.seed, 7);
        assert_eq!(chaos.mix.len(), 3);
        assert_eq!(chaos.mix[0].weight, 3);
        assert_eq!(rule.matcher.service, Service::Entra);
        assert!(FaultRule::parse_flag("teapot").is_err());
        assert!(FaultRule::parse_flag("delay").is_err());
        assert!(FaultRule::parse_flag("reset=3").is_err());
        assert!(FaultRule::parse_flag("429=a\nb").is_err());
        assert!(FaultRule::parse_chaos_flag("1.5,mix=reset").is_err());
        assert!(FaultRule::parse_chaos_flag("0.5").is_err());
    }

    #[test]
    fn json_plans_read_one_rule_or_a_list() {
        let plan = FaultPlan::from_json(
            r#"{"match":{"method":"GET"},"fault":{"kind":"delay","ms":5},"times":2}"#,
        )
        .unwrap();
        assert_eq!(plan.rules.len(), 1);
        let plan = FaultPlan::from_json(
            r#"{"rules":[{"fault":{"kind":"504"}},{"chaos":{"probability":0.1,"seed":1,"mix":[{"fault":{"kind":"reset"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(plan.rules.len(), 2);
        assert!(FaultPlan::from_json(r#"{"fault":{"kind":"504"},"oops":1}"#).is_err());
        assert!(FaultPlan::from_json(r#"{"times":1}"#).is_err());
    }

    #[test]
    fn times_rules_are_used_up_in_order_and_counted() {
        let faults = Faults::default();
        faults
            .add(FaultPlan {
                rules: vec![FaultRule::next(2, FaultKind::GatewayTimeout).method("POST")],
            })
            .unwrap();
        assert!(faults.pick(Service::Graph, "GET", "/me/messages").is_none());
        assert!(faults.pick(Service::Entra, "POST", "/t/token").is_none());
        let first = faults.pick(Service::Graph, "post", "/me/sendMail").unwrap();
        faults.injected(&first);
        let second = faults.pick(Service::Graph, "POST", "/me/sendMail").unwrap();
        faults.not_applicable(&second);
        let third = faults.pick(Service::Graph, "POST", "/me/sendMail").unwrap();
        faults.injected(&third);
        assert!(
            faults
                .pick(Service::Graph, "POST", "/me/sendMail")
                .is_none()
        );
        let report = faults.report();
        assert_eq!(report.count("504"), 2);
        assert_eq!(report.rules[0].remaining, Some(0));
        faults.clear();
        assert_eq!(faults.report(), FaultReport::default());
    }

    #[test]
    fn chaos_is_deterministic_per_seed_and_near_its_probability() {
        let run = |seed| {
            let faults = Faults::default();
            faults
                .add(FaultPlan {
                    rules: vec![FaultRule::chaos(
                        0.2,
                        seed,
                        vec![(3, FaultKind::Reset), (1, FaultKind::GatewayTimeout)],
                    )],
                })
                .unwrap();
            (0..1000)
                .map(|_| {
                    faults
                        .pick(Service::Graph, "GET", "/me/messages")
                        .map(|p| p.kind.name())
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let hits = a.iter().flatten().count();
        assert!((150..250).contains(&hits), "{hits}");
        let resets = a.iter().flatten().filter(|k| **k == "reset").count();
        assert!(resets > hits / 2, "{resets} of {hits}");
    }

    #[test]
    fn batch_envelopes_match_only_rules_that_name_them() {
        let plain = FaultMatch::default();
        assert!(!plain.matches(Service::Graph, "POST", "/$batch", false));
        assert!(plain.matches(Service::Graph, "GET", "/me/messages", false));
        let batch = FaultMatch {
            path: Some("$batch".into()),
            ..FaultMatch::default()
        };
        assert!(batch.matches(Service::Graph, "POST", "/$batch", false));
        assert!(!batch.matches(Service::Graph, "GET", "/me/messages", false));
        // As a proxy sees it: plain requests and envelopes, never the items inside.
        let proxy = FaultMatch {
            scope: FaultScope::Http,
            ..FaultMatch::default()
        };
        assert!(proxy.matches(Service::Graph, "POST", "/$batch", false));
        assert!(proxy.matches(Service::Graph, "GET", "/me/messages", false));
        assert!(!proxy.matches(Service::Graph, "GET", "/me/messages/1/$value", true));
        assert!(plain.matches(Service::Graph, "GET", "/me/messages/1/$value", true));
        assert_eq!(
            FaultRule::parse_flag("429,scope=http")
                .unwrap()
                .matcher
                .scope,
            FaultScope::Http
        );
    }
}
