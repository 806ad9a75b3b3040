//! The `scope` parameter: OIDC scopes, and permissions of (ideally) one resource.
//!
//! `Mail.Read` without a resource prefix means Microsoft Graph, as in Entra. A resource may also
//! be named by its well-known application ID (`00000003-0000-0000-c000-000000000000/Mail.Read`).

use std::collections::BTreeMap;

use super::seed::{GRAPH, OUTLOOK};

pub(crate) const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// First-party resources every tenant has: (resource URI, application ID).
pub(crate) const FIRST_PARTY: [(&str, &str); 2] = [
    (GRAPH, "00000003-0000-0000-c000-000000000000"),
    (OUTLOOK, "00000002-0000-0ff1-ce00-000000000000"),
];

/// The application ID Entra names a resource by in some messages (AADSTS50076).
pub(crate) fn resource_app_id(resource: &str) -> String {
    FIRST_PARTY
        .iter()
        .find(|(uri, _)| *uri == resource)
        .map_or_else(|| resource.to_string(), |(_, id)| (*id).to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeProblem {
    /// A scope token that names no permission (e.g. `https://graph.microsoft.com/`).
    Malformed(String),
    /// A resource the tenant does not know.
    UnknownResource(String),
    /// Permissions of two resources in one token request.
    MultipleResources,
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Scopes {
    /// The OIDC scopes asked for, lowercase, in the order of [`OIDC_SCOPES`].
    pub oidc: Vec<&'static str>,
    /// Permissions by resource URI. `.default` is kept as a permission name.
    pub by_resource: BTreeMap<String, Vec<String>>,
}

impl Scopes {
    /// Parses `raw` against the resources the directory knows.
    pub(crate) fn parse(raw: &str, known: &[String]) -> Result<Self, ScopeProblem> {
        let mut scopes = Self::default();
        for token in raw.split_whitespace() {
            if let Some(oidc) = OIDC_SCOPES.iter().find(|s| s.eq_ignore_ascii_case(token)) {
                if !scopes.oidc.contains(oidc) {
                    scopes.oidc.push(oidc);
                }
                continue;
            }
            let (resource, permission) = split(token, known)?;
            let list = scopes.by_resource.entry(resource).or_default();
            if !list.iter().any(|p| p.eq_ignore_ascii_case(&permission)) {
                list.push(permission);
            }
        }
        scopes
            .oidc
            .sort_by_key(|s| OIDC_SCOPES.iter().position(|o| o == s));
        Ok(scopes)
    }

    pub(crate) fn has(&self, oidc: &str) -> bool {
        self.oidc.contains(&oidc)
    }

    /// The one resource of a token request (Graph when only OIDC scopes were asked for).
    pub(crate) fn single_resource(&self) -> Result<(String, Vec<String>), ScopeProblem> {
        let mut resources = self.by_resource.iter();
        match (resources.next(), resources.next()) {
            (None, _) => Ok((GRAPH.to_string(), Vec::new())),
            (Some((r, p)), None) => Ok((r.clone(), p.clone())),
            (Some(_), Some(_)) => Err(ScopeProblem::MultipleResources),
        }
    }
}

fn split(token: &str, known: &[String]) -> Result<(String, String), ScopeProblem> {
    let malformed = || ScopeProblem::Malformed(token.to_string());
    if token.contains("://") {
        let idx = token.rfind('/').ok_or_else(malformed)?;
        let (resource, permission) = (&token[..idx], &token[idx + 1..]);
        if permission.is_empty() || resource.ends_with(':') || resource.ends_with("//") {
            return Err(malformed());
        }
        let resource = resource.trim_end_matches('/');
        let canonical = known
            .iter()
            .find(|k| k.trim_end_matches('/').eq_ignore_ascii_case(resource))
            .ok_or_else(|| ScopeProblem::UnknownResource(resource.to_string()))?;
        return Ok((canonical.clone(), permission.to_string()));
    }
    if let Some((prefix, permission)) = token.split_once('/') {
        if permission.is_empty() || permission.contains('/') {
            return Err(malformed());
        }
        let (uri, _) = FIRST_PARTY
            .iter()
            .find(|(_, id)| id.eq_ignore_ascii_case(prefix))
            .ok_or_else(|| ScopeProblem::UnknownResource(prefix.to_string()))?;
        return Ok(((*uri).to_string(), permission.to_string()));
    }
    Ok((GRAPH.to_string(), token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec![GRAPH.to_string(), OUTLOOK.to_string()]
    }

    #[test]
    fn bare_permissions_mean_graph_and_oidc_scopes_are_separated() {
        let s = Scopes::parse("Mail.Read OFFLINE_ACCESS openid User.Read", &known()).unwrap();
        assert_eq!(s.oidc, vec!["openid", "offline_access"]);
        assert_eq!(
            s.single_resource().unwrap(),
            (
                GRAPH.to_string(),
                vec!["Mail.Read".into(), "User.Read".into()]
            )
        );
    }

    #[test]
    fn prefixed_permissions_name_their_resource() {
        let s = Scopes::parse(
            "https://outlook.office365.com/SMTP.Send 00000002-0000-0ff1-ce00-000000000000/IMAP.AccessAsUser.All",
            &known(),
        )
        .unwrap();
        assert_eq!(
            s.single_resource().unwrap(),
            (
                OUTLOOK.to_string(),
                vec!["SMTP.Send".into(), "IMAP.AccessAsUser.All".into()]
            )
        );
    }

    #[test]
    fn two_resources_unknown_resources_and_empty_permissions_are_problems() {
        let s = Scopes::parse(
            "Mail.Read https://outlook.office365.com/SMTP.Send",
            &known(),
        )
        .unwrap();
        assert_eq!(s.single_resource(), Err(ScopeProblem::MultipleResources));
        assert_eq!(
            Scopes::parse("https://example.com/x", &known()),
            Err(ScopeProblem::UnknownResource("https://example.com".into()))
        );
        assert_eq!(
            Scopes::parse("https://graph.microsoft.com/", &known()),
            Err(ScopeProblem::Malformed(
                "https://graph.microsoft.com/".into()
            ))
        );
    }
}
