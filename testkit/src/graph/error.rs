//! Graph-shaped errors:
//! `{"error":{"code":…,"message":…,"innerError":{"date":…,"request-id":…,"client-request-id":…}}}`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::http::{Ctx, Resp, RespBody};

/// One Graph error answer.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// 401s carry `WWW-Authenticate`.
    pub challenge: bool,
}

pub(crate) type GraphResult<T> = Result<T, GraphError>;

impl GraphError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: false,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn body(&self, ctx: &Ctx) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": ctx.inner_error_date(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
            }
        }})
    }

    pub(crate) fn into_resp(self, ctx: &Ctx) -> Resp {
        let mut resp = Resp::new(self.status, RespBody::Json(self.body(ctx)));
        if let Some(secs) = self.retry_after {
            resp.header("Retry-After", secs.to_string());
        }
        if self.challenge {
            resp.header(
                "WWW-Authenticate",
                format!(
                    "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                    ctx.base_url
                ),
            );
        }
        resp
    }
}

/// The errors Graph answers with, by case.
pub(crate) mod graph_errors {
    use axum::http::StatusCode;

    use super::GraphError;

    fn unauthorized(message: &str) -> GraphError {
        let mut e = GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        e.challenge = true;
        e
    }

    pub(crate) fn token_missing() -> GraphError {
        unauthorized("Access token is empty.")
    }

    pub(crate) fn token_malformed() -> GraphError {
        unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
    }

    pub(crate) fn token_invalid() -> GraphError {
        unauthorized("Access token validation failure.")
    }

    pub(crate) fn token_expired() -> GraphError {
        unauthorized("Access token has expired or is not yet valid.")
    }

    pub(crate) fn wrong_audience() -> GraphError {
        unauthorized("Access token validation failure. Invalid audience.")
    }

    pub(crate) fn access_denied() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub(crate) fn directory_denied() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub(crate) fn raop_denied() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        )
    }

    pub(crate) fn send_as_denied() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
        )
    }

    pub(crate) fn me_app_only() -> GraphError {
        GraphError::bad_request(
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )
    }

    pub(crate) fn invalid_user(user: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    }

    pub(crate) fn directory_not_found(user: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{user}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub(crate) fn item_not_found() -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    pub(crate) fn id_malformed() -> GraphError {
        GraphError::bad_request("ErrorInvalidIdMalformed", "Id is malformed.")
    }

    pub(crate) fn unknown_property(property: &str, entity: &str) -> GraphError {
        GraphError::bad_request(
            "RequestBroker--ParseUri",
            format!(
                "Could not find a property named '{property}' on type 'microsoft.graph.{entity}'."
            ),
        )
    }

    pub(crate) fn body_unknown_property(property: &str, entity: &str) -> GraphError {
        GraphError::bad_request(
            "RequestBodyRead",
            format!(
                "The property '{property}' does not exist on type 'microsoft.graph.{entity}'. Make sure to only use property names that are defined by the type or mark the type as open type."
            ),
        )
    }

    pub(crate) fn body_read(message: impl Into<String>) -> GraphError {
        GraphError::bad_request("RequestBodyRead", message)
    }

    pub(crate) fn empty_body() -> GraphError {
        body_read("Empty Payload. JSON content expected.")
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> GraphError {
        GraphError::bad_request("ErrorInvalidRequest", message)
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> GraphError {
        GraphError::bad_request("ErrorInvalidParameter", message)
    }

    pub(crate) fn invalid_filter() -> GraphError {
        GraphError::bad_request(
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::bad_request("BadRequest", message)
    }

    pub(crate) fn segment_not_found(segment: &str) -> GraphError {
        GraphError::bad_request(
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    pub(crate) fn method_not_allowed(method: &str) -> GraphError {
        GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            format!("The HTTP method '{method}' is not supported for this resource."),
        )
    }

    pub(crate) fn too_large() -> GraphError {
        GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The maximum request length supported is 4MB.",
        )
    }

    pub(crate) fn invalid_recipients(message: &str) -> GraphError {
        GraphError::bad_request(
            "ErrorInvalidRecipients",
            format!("At least one recipient is not valid., {message}"),
        )
    }

    pub(crate) fn time_zone_not_supported(zone: &str) -> GraphError {
        GraphError::bad_request(
            "TimeZoneNotSupportedException",
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone}'."
            ),
        )
    }

    pub(crate) fn property_validation(message: impl Into<String>) -> GraphError {
        GraphError::bad_request("ErrorPropertyValidationFailure", message)
    }

    pub(crate) fn update_sent_message(property: &str) -> GraphError {
        GraphError::bad_request(
            "ErrorInvalidPropertyUpdateSentMessage",
            format!(
                "Update operation failed since the property '{property}' can't be updated on a sent message."
            ),
        )
    }

    pub(crate) fn throttled_concurrency() -> GraphError {
        let mut e = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        );
        e.retry_after = Some(1);
        e
    }

    pub(crate) fn throttled_rate(retry_after: u64) -> GraphError {
        let mut e = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its ResourceUnitLimit.",
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub(crate) fn server_error(status: u16) -> GraphError {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(StatusCode::is_server_error)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (code, message) = match status.as_u16() {
            503 => (
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => ("GatewayTimeout", "The gateway timed out."),
            502 => ("BadGateway", "The server returned an invalid response."),
            _ => ("UnknownError", "An internal server error occurred."),
        };
        GraphError::new(status, code, message)
    }
}
