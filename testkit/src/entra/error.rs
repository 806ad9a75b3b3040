//! Entra-shaped errors: the JSON body of the token endpoints, the HTML page of the sign-in
//! endpoints, and the query parameters of an error redirect.
//!
//! Messages follow Entra's wording (from Microsoft's AADSTS reference and real responses).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::html;

/// Where an error happened: the values every Entra error carries.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub base_url: String,
    pub trace_id: String,
    pub correlation_id: String,
    pub timestamp: String,
}

impl Ctx {
    /// The correlation ID is the caller's `client-request-id` header when it sent one.
    pub(crate) fn new(base_url: String, now: OffsetDateTime, headers: &HeaderMap) -> Self {
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 100 && v.chars().all(|c| c.is_ascii_graphic()))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        Self {
            base_url,
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id,
            timestamp: entra_timestamp(now),
        }
    }

    /// Adds `client-request-id` (echo) and `x-ms-request-id` (trace ID) like Entra does.
    pub(crate) fn decorate(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.correlation_id) {
            headers.insert("client-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.trace_id) {
            headers.insert("x-ms-request-id", v);
        }
    }
}

/// `YYYY-MM-DD HH:MM:SSZ`, as in Entra's error bodies.
pub(crate) fn entra_timestamp(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(fmt).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS.fffffffZ`, as in Entra's messages about times.
pub(crate) fn entra_instant(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.format(fmt).unwrap_or_default()
}

/// One AADSTS error.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    pub status: StatusCode,
    /// The OAuth `error` value (`invalid_grant`, `invalid_client`, …).
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
    pub claims: Option<String>,
    pub retry_after: Option<u64>,
}

impl AadError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
            suberror: None,
            claims: None,
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    pub(crate) fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    pub(crate) fn invalid_grant(code: u32, message: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", code, message)
    }

    /// `AADSTSnnnn: message Trace ID: … Correlation ID: … Timestamp: …`
    pub(crate) fn description(&self, ctx: &Ctx) -> String {
        format!(
            "AADSTS{}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
            self.code, self.message, ctx.trace_id, ctx.correlation_id, ctx.timestamp
        )
    }

    pub(crate) fn error_uri(&self, ctx: &Ctx) -> String {
        format!("{}/error?code={}", ctx.base_url, self.code)
    }

    pub(crate) fn body(&self, ctx: &Ctx) -> Value {
        let mut body = json!({
            "error": self.error,
            "error_description": self.description(ctx),
            "error_codes": [self.code],
            "timestamp": ctx.timestamp,
            "trace_id": ctx.trace_id,
            "correlation_id": ctx.correlation_id,
            "error_uri": self.error_uri(ctx),
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(suberror) = self.suberror {
                obj.insert("suberror".into(), suberror.into());
            }
            if let Some(claims) = &self.claims {
                obj.insert("claims".into(), claims.clone().into());
            }
        }
        body
    }

    /// The JSON answer of `/token` and `/devicecode`.
    pub(crate) fn into_json(self, ctx: &Ctx) -> Response {
        let mut response = (self.status, axum::Json(self.body(ctx))).into_response();
        no_store(&mut response);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        ctx.decorate(&mut response);
        response
    }

    /// The page `/authorize` shows when it cannot redirect back to the app.
    pub(crate) fn into_html(self, ctx: &Ctx) -> Response {
        let page = html::page(
            "Sign in",
            &format!(
                "<h1>Sorry, but we're having trouble signing you in.</h1>\n\
                 <p id=\"error\" class=\"error\">{}</p>\n\
                 <dl><dt>Request Id</dt><dd>{}</dd><dt>Correlation Id</dt><dd>{}</dd>\
                 <dt>Timestamp</dt><dd>{}</dd></dl>",
                html::escape(&format!("AADSTS{}: {}", self.code, self.message)),
                html::escape(&ctx.trace_id),
                html::escape(&ctx.correlation_id),
                html::escape(&ctx.timestamp),
            ),
        );
        let mut response = (self.status, Html(page)).into_response();
        ctx.decorate(&mut response);
        response
    }
}

pub(crate) fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The AADSTS catalogue the mock answers with.
pub(crate) mod aadsts {
    use axum::http::StatusCode;

    use super::AadError;

    pub(crate) const CERT_DOCS: &str = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .";

    pub(crate) fn tenant_not_found(tenant: &str, error: &'static str) -> AadError {
        AadError::bad_request(
            error,
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
                 signing into the correct cloud. Check with your subscription administrator, this may \
                 happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    pub(crate) fn missing_parameter(name: &str) -> AadError {
        AadError::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub(crate) fn malformed_request(detail: &str) -> AadError {
        AadError::bad_request(
            "invalid_request",
            9002313,
            format!("Invalid request. Request is malformed or invalid. {detail}"),
        )
    }

    pub(crate) fn app_not_found(client_id: &str, directory: &str) -> AadError {
        AadError::bad_request(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{directory}'. \
                 This can happen if the application has not been installed by the administrator of the \
                 tenant or consented to by any user in the tenant. You may have sent your authentication \
                 request to the wrong tenant."
            ),
        )
    }

    pub(crate) fn credential_required() -> AadError {
        AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    }

    pub(crate) fn invalid_secret(client_id: &str) -> AadError {
        AadError::invalid_client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the \
                 client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    }

    /// An app registered in the tenant without a service principal (enterprise application)
    /// asks for an app-only token.
    pub(crate) fn missing_service_principal(client_id: &str, tenant_id: &str) -> AadError {
        AadError::bad_request(
            "invalid_client",
            7000229,
            format!(
                "The client application {client_id} is missing service principal in the tenant \
                 {tenant_id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
            ),
        )
    }

    pub(crate) fn secret_expired(client_id: &str) -> AadError {
        AadError::invalid_client(
            7000222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal \
                 to create new keys for your app: https://aka.ms/NewClientSecret, or consider using \
                 certificate credentials for added security: https://aka.ms/certCreds."
            ),
        )
    }

    pub(crate) fn public_client_with_credential() -> AadError {
        AadError::invalid_client(
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        )
    }

    pub(crate) fn assertion_malformed(detail: &str) -> AadError {
        AadError::invalid_client(
            50027,
            format!("JWT token is invalid or malformed. {detail}"),
        )
    }

    pub(crate) fn assertion_signature(reason: &str, thumbprint: &str, client_id: &str) -> AadError {
        AadError::invalid_client(
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used \
                 by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use \
                 MS Graph to see configured keys for app Id '{client_id}'.] {CERT_DOCS}"
            ),
        )
    }

    pub(crate) fn assertion_issuer(client_id: &str) -> AadError {
        AadError::invalid_client(
            700021,
            format!(
                "Client assertion application identifier doesn't match 'client_id' parameter ('{client_id}'). \
                 {CERT_DOCS}"
            ),
        )
    }

    pub(crate) fn assertion_subject() -> AadError {
        AadError::invalid_client(
            50048,
            "Subject mismatches Issuer claim in the client assertion. Contact the tenant admin.",
        )
    }

    pub(crate) fn assertion_audience(expected: &str) -> AadError {
        AadError::invalid_client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. The audience must be \
                 '{expected}'. {CERT_DOCS}"
            ),
        )
    }

    pub(crate) fn assertion_time(
        now: &str,
        valid_from: &str,
        expiry: &str,
        extra: &str,
    ) -> AadError {
        AadError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid \
                 from {valid_from}, expiry time of assertion {expiry}.{extra} {CERT_DOCS}"
            ),
        )
    }

    pub(crate) fn consent_missing(client_id: &str, name: &str) -> AadError {
        AadError::invalid_grant(
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' \
                 named '{name}'. Send an interactive authorization request for this user and resource."
            ),
        )
    }

    pub(crate) fn bad_password() -> AadError {
        AadError::invalid_grant(
            50126,
            "Error validating credentials due to invalid username or password.",
        )
    }

    pub(crate) fn user_not_found(directory: &str) -> AadError {
        AadError::invalid_grant(
            50034,
            format!(
                "The user account {{EUII Hidden}} does not exist in the {directory} directory. To sign into \
                 this application, the account must be added to the directory."
            ),
        )
    }

    pub(crate) fn mfa_required(resource_app_id: &str) -> AadError {
        let mut e = AadError::invalid_grant(
            50076,
            format!(
                "Due to a configuration change made by your administrator, or because you moved to a new \
                 location, you must use multi-factor authentication to access '{resource_app_id}'."
            ),
        );
        e.suberror = Some("basic_action");
        e.claims = Some(
            r#"{"access_token":{"capolids":{"essential":true,"values":["5f1e7c3a-0b6d-4e2f-9a8b-7c6d5e4f3a2b"]}}}"#
                .to_string(),
        );
        e
    }

    pub(crate) fn grant_expired_or_revoked() -> AadError {
        AadError::invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new \
             interactive authorization request for this user and resource.",
        )
    }

    pub(crate) fn refresh_token_inactive(issued: &str) -> AadError {
        AadError::invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {issued} and was \
                 inactive for 90.00:00:00."
            ),
        )
    }

    pub(crate) fn code_redeemed() -> AadError {
        AadError::invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an \
             existing refresh token.",
        )
    }

    pub(crate) fn invalid_code(parameter: &str, detail: &str) -> AadError {
        AadError::invalid_grant(
            70000,
            format!("The provided value for the '{parameter}' parameter is not valid. {detail}"),
        )
    }

    pub(crate) fn verifier_missing() -> AadError {
        AadError::invalid_grant(
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
        )
    }

    pub(crate) fn verifier_mismatch() -> AadError {
        AadError::invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        )
    }

    pub(crate) fn invalid_scope(scope: &str, detail: &str) -> AadError {
        AadError::bad_request(
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the \
                 input parameter 'scope' is not valid. The scope {scope} is not valid.{detail}"
            ),
        )
    }

    pub(crate) fn multiple_resources(scope: &str) -> AadError {
        invalid_scope(
            scope,
            " It contains more than one resource; request the scopes of one resource per token.",
        )
    }

    pub(crate) fn client_credentials_scope(scope: &str) -> AadError {
        AadError::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a \
                 scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    }

    pub(crate) fn resource_not_found(resource: &str, tenant: &str) -> AadError {
        AadError::bad_request(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This \
                 can happen if the application has not been installed by the administrator of the tenant \
                 or consented to by any user in the tenant. You might have sent your authentication \
                 request to the wrong tenant."
            ),
        )
    }

    pub(crate) fn unsupported_grant_type(grant: &str) -> AadError {
        AadError::bad_request(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        )
    }

    pub(crate) fn authorization_pending() -> AadError {
        AadError::bad_request(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
    }

    pub(crate) fn slow_down(interval: u64) -> AadError {
        AadError::bad_request(
            "slow_down",
            70016,
            format!(
                "OAuth 2.0 device flow error. Authorization is pending, and the client polled sooner than \
                 the interval of {interval} seconds. Slow down."
            ),
        )
    }

    pub(crate) fn device_code_expired() -> AadError {
        AadError::bad_request("expired_token", 70019, "Verification code expired.")
    }

    pub(crate) fn device_code_declined() -> AadError {
        AadError::bad_request(
            "authorization_declined",
            70000,
            "The user has denied access to the scope requested by the client application.",
        )
    }

    pub(crate) fn bad_device_code() -> AadError {
        AadError::bad_request(
            "bad_verification_code",
            70018,
            "The provided value for the 'device_code' parameter is not valid. It was not issued by this \
             tenant, or it was already redeemed.",
        )
    }

    pub(crate) fn wrong_tenant_for_code() -> AadError {
        AadError::invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        )
    }

    pub(crate) fn reply_address_mismatch(given: &str, original: &str) -> AadError {
        AadError::invalid_grant(
            500112,
            format!(
                "The reply address '{given}' does not match the reply address '{original}' provided when \
                 requesting Authorization code."
            ),
        )
    }

    pub(crate) fn get_on_post_endpoint() -> AadError {
        AadError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
        )
    }
}
