//! What EWS's answers mean for the pipeline: [`EwsAnswers`] classifies them. `ErrorServerBusy`
//! (as an HTTP 500 SOAP fault or inside a 200 answer) is busy and unprocessed, with
//! `BackOffMilliseconds` as the hint; so are `ErrorExceededConnectionCount` and
//! `ErrorTooManyObjectsOpened`; a fault with a transient code (`ErrorInternalServerTransientError`,
//! `ErrorMailboxStoreUnavailable`, `ErrorMailboxMoveInProgress`, …) is busy but maybe
//! processed; 401 asks for a new credential; 429 and 503 are busy with `Retry-After`;
//! everything else failed, for the backend to explain with
//! [`wire::EwsError`](super::wire::EwsError). A transient code inside one response message of a
//! 200 answer is left to the decoder ([`EwsError::is_retryable`]): retrying the whole request
//! would repeat the items that succeeded.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::{EwsError, ResponseCode, decode_fault, find_busy};
use crate::pipeline::{Classify, Verdict};

/// EWS's answers, read for the pipeline.
#[derive(Debug, Default)]
pub struct EwsAnswers;

impl Classify for EwsAnswers {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let retry_after = || crate::net::retry_after(headers);
        match status.as_u16() {
            401 => Verdict::Unauthorized,
            429 | 503 => Verdict::Busy {
                hint: retry_after(),
                unprocessed: true,
            },
            200..=299 => match find_busy(body) {
                Some(e) => Verdict::Busy {
                    hint: e.back_off,
                    unprocessed: true,
                },
                None => Verdict::Done,
            },
            500 => match decode_fault(body) {
                Some(e) if e.is_busy() => Verdict::Busy {
                    hint: e.back_off.or_else(retry_after),
                    unprocessed: true,
                },
                // A transient failure (a store briefly unavailable, a mailbox being moved, a
                // timeout) may have happened after the server acted.
                Some(e) if e.is_retryable() => Verdict::Busy {
                    hint: e.back_off.or_else(retry_after),
                    unprocessed: false,
                },
                _ => Verdict::Failed,
            },
            _ => Verdict::Failed,
        }
    }
}

impl EwsAnswers {
    /// The EWS error an answer carries beyond its response messages: a SOAP fault (any
    /// status), a bare 403 ("EWS is disabled", with the fix and Exchange Online's dates), or
    /// another HTTP failure by its status. `None` for a 2xx answer without a fault, whose
    /// response messages the operation's decoder reads.
    pub fn refusal(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<EwsError> {
        if let Some(mut e) = decode_fault(body) {
            e.http_status = Some(status.as_u16());
            return Some(e);
        }
        let code = match status.as_u16() {
            200..=299 => return None,
            403 => return Some(EwsError::ews_disabled()),
            429 | 503 => ResponseCode::ErrorServerBusy,
            _ => ResponseCode::Other(format!("HTTP{}", status.as_u16())),
        };
        Some(EwsError {
            code,
            message: format!("HTTP {status}"),
            back_off: crate::net::retry_after(headers),
            http_status: Some(status.as_u16()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fault(code: &str, back_off: Option<u64>) -> String {
        let xml = back_off.map_or(String::new(), |ms| {
            format!(
                r#"<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#
            )
        });
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>{xml}</detail></s:Fault></s:Body></s:Envelope>"#
        )
    }

    fn in_message(code: &str, back_off: u64) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>busy</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value Name="BackOffMilliseconds">{back_off}</t:Value></m:MessageXml><m:Items/></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn busy_faults_and_messages_carry_the_back_off_hint() {
        let c = EwsAnswers;
        let h = HeaderMap::new();
        let busy = fault("ErrorServerBusy", Some(2994));
        assert_eq!(
            c.classify(StatusCode::INTERNAL_SERVER_ERROR, &h, busy.as_bytes()),
            Verdict::Busy {
                hint: Some(Duration::from_millis(2994)),
                unprocessed: true
            }
        );
        let in_200 = in_message("ErrorServerBusy", 500);
        assert_eq!(
            c.classify(StatusCode::OK, &h, in_200.as_bytes()),
            Verdict::Busy {
                hint: Some(Duration::from_millis(500)),
                unprocessed: true
            }
        );
        for code in ["ErrorExceededConnectionCount", "ErrorTooManyObjectsOpened"] {
            assert!(matches!(
                c.classify(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &h,
                    fault(code, None).as_bytes()
                ),
                Verdict::Busy {
                    hint: None,
                    unprocessed: true
                }
            ));
        }
        for code in [
            "ErrorInternalServerTransientError",
            "ErrorMailboxStoreUnavailable",
            "ErrorMailboxMoveInProgress",
        ] {
            assert_eq!(
                c.classify(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &h,
                    fault(code, None).as_bytes()
                ),
                Verdict::Busy {
                    hint: None,
                    unprocessed: false
                },
                "{code}"
            );
        }
    }

    #[test]
    fn refusals_are_explained_with_their_fix() {
        let h = HeaderMap::new();
        let disabled = EwsAnswers::refusal(StatusCode::FORBIDDEN, &h, b"").unwrap();
        assert_eq!(disabled.code, ResponseCode::EwsDisabled);
        assert!(
            disabled
                .fix()
                .contains("Set-OrganizationConfig -EwsEnabled $true")
        );
        assert!(disabled.fix().contains("1 April 2027"));
        let busy = fault("ErrorServerBusy", Some(2994));
        let e =
            EwsAnswers::refusal(StatusCode::INTERNAL_SERVER_ERROR, &h, busy.as_bytes()).unwrap();
        assert_eq!(e.back_off, Some(Duration::from_millis(2994)));
        assert_eq!(e.http_status, Some(500));
        assert!(e.is_busy());
        let gateway = EwsAnswers::refusal(StatusCode::BAD_GATEWAY, &h, b"<html/>").unwrap();
        assert_eq!(gateway.code.as_str(), "HTTP502");
        assert!(
            EwsAnswers::refusal(
                StatusCode::OK,
                &h,
                in_message("ErrorItemNotFound", 0).as_bytes()
            )
            .is_none()
        );
    }

    #[test]
    fn other_answers_are_done_unauthorized_busy_by_status_or_failed() {
        let c = EwsAnswers;
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        let not_found = in_message("ErrorItemNotFound", 0);
        assert_eq!(
            c.classify(StatusCode::OK, &h, not_found.as_bytes()),
            Verdict::Done
        );
        assert_eq!(c.classify(StatusCode::OK, &h, b"not xml"), Verdict::Done);
        assert_eq!(
            c.classify(StatusCode::UNAUTHORIZED, &h, b""),
            Verdict::Unauthorized
        );
        assert_eq!(
            c.classify(StatusCode::SERVICE_UNAVAILABLE, &h, b""),
            Verdict::Busy {
                hint: Some(Duration::from_secs(7)),
                unprocessed: true
            }
        );
        assert_eq!(
            c.classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b""),
            Verdict::Busy {
                hint: None,
                unprocessed: true
            }
        );
        assert_eq!(c.classify(StatusCode::FORBIDDEN, &h, b""), Verdict::Failed);
        let schema = fault("ErrorSchemaValidation", None);
        assert_eq!(
            c.classify(StatusCode::INTERNAL_SERVER_ERROR, &h, schema.as_bytes()),
            Verdict::Failed
        );
        assert_eq!(
            c.classify(StatusCode::INTERNAL_SERVER_ERROR, &h, b"<html/>"),
            Verdict::Failed
        );
    }
}
