//! OIDC discovery, JWKS, the sign-out page and the error lookup page.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::error::{Ctx, aadsts};
use super::html;
use super::state::{EntraState, TenantLookup, is_alias};

pub(crate) async fn openid_configuration(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = state.lock();
    let ctx = Ctx::new(inner.base_url.clone(), inner.now(), &headers);
    let alias = is_alias(&tenant);
    let (segment, tid) = match inner.find_tenant(&tenant, None) {
        // Entra names a specific tenant by its ID in every URL, however it was asked for.
        TenantLookup::Found(t) if !alias => match inner.tenant(t) {
            Some(found) => (found.id.clone(), found.id.clone()),
            None => return aadsts::tenant_not_found(&tenant, "invalid_tenant").into_json(&ctx),
        },
        TenantLookup::Found(_) => (tenant.to_ascii_lowercase(), "{tenantid}".to_string()),
        TenantLookup::NotFound => {
            return aadsts::tenant_not_found(&tenant, "invalid_tenant").into_json(&ctx);
        }
    };
    let base = &inner.base_url;
    let host = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest);
    let mut response = Json(json!({
        "token_endpoint": format!("{base}/{segment}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "private_key_jwt", "client_secret_basic"
        ],
        "jwks_uri": format!("{base}/{segment}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{segment}/oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
            "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
            "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "tenant_region_scope": "EU",
        "cloud_instance_name": host,
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response();
    ctx.decorate(&mut response);
    response
}

pub(crate) async fn keys(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = state.lock();
    let ctx = Ctx::new(inner.base_url.clone(), inner.now(), &headers);
    let issuer = match inner.find_tenant(&tenant, None) {
        TenantLookup::Found(t) if !is_alias(&tenant) => match inner.tenant(t) {
            Some(found) => inner.issuer(&found.id),
            None => return aadsts::tenant_not_found(&tenant, "invalid_tenant").into_json(&ctx),
        },
        TenantLookup::Found(_) => inner.issuer("{tenantid}"),
        TenantLookup::NotFound => {
            return aadsts::tenant_not_found(&tenant, "invalid_tenant").into_json(&ctx);
        }
    };
    let mut response = Json(json!({ "keys": [state.key.jwk(&issuer)] })).into_response();
    ctx.decorate(&mut response);
    response
}

pub(crate) async fn logout(Path(_tenant): Path<String>) -> Response {
    Html(html::page(
        "Sign out",
        "<h1>You signed out of your account</h1>\n<p>It's a good idea to close all browser windows.</p>",
    ))
    .into_response()
}

pub(crate) async fn error_page(RawQuery(query): RawQuery) -> Response {
    let code = query
        .as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .and_then(|mut pairs| {
            pairs
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    Html(html::page(
        "Error lookup",
        &format!(
            "<h1>Error lookup</h1>\n<p id=\"code\">AADSTS{}</p>\n\
             <p>This is the exgate mock of Entra ID; the error description in the response says \
             what went wrong.</p>",
            html::escape(&code)
        ),
    ))
    .into_response()
}
