//! IDs in URL paths: each one exactly one segment, whatever it holds.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::mailbox::MailboxError;

/// Everything but RFC 3986's unreserved characters is percent-encoded, so `/`, `?`, `#`, `%`
/// and `\` in an ID cannot change the path or the query.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `id` as one path segment. `.` and `..` (and the empty string) are refused: URL parsers
/// (WHATWG, RFC 3986 §5.2.4) resolve them — and their `%2E` spellings — as "this" and "the
/// parent" folder, so no encoding keeps them inside their item. No mailbox server issues them.
pub fn segment(what: &str, id: &str) -> Result<String, MailboxError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(MailboxError::Invalid(format!(
            "`{id}` is not a {what} ID; copy the ID from a listing (its ID column, or `id` with --json)"
        )));
    }
    Ok(utf8_percent_encode(id, SEGMENT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_segment() {
        assert_eq!(segment("message", "AAMk-_=").unwrap(), "AAMk-_%3D");
        assert_eq!(segment("message", "a/b").unwrap(), "a%2Fb");
        assert_eq!(segment("message", "a%2Fb").unwrap(), "a%252Fb");
        assert_eq!(segment("message", "%2e%2e").unwrap(), "%252e%252e");
        assert_eq!(segment("message", "a?b#c").unwrap(), "a%3Fb%23c");
        assert_eq!(segment("message", "a\\b c").unwrap(), "a%5Cb%20c");
        for bad in ["", ".", ".."] {
            assert!(matches!(
                segment("message", bad),
                Err(MailboxError::Invalid(_))
            ));
        }
        // A URL built from an encoded ID keeps it as one segment.
        let base = url::Url::parse("https://graph.microsoft.com/v1.0/").unwrap();
        for id in ["../x", "..%2F", "a/../../b", "%2e%2e", "...", ".a"] {
            let url = base
                .join(&format!("me/messages/{}", segment("message", id).unwrap()))
                .unwrap();
            assert!(
                url.path().starts_with("/v1.0/me/messages/"),
                "{id} -> {url}"
            );
            assert_eq!(url.path_segments().unwrap().count(), 4, "{id} -> {url}");
        }
    }
}
