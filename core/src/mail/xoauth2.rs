//! SASL XOAUTH2, as Google defined it and Exchange Online accepts it: the initial client response
//! is `user=<mailbox>^Aauth=Bearer <token>^A^A` (`^A` = 0x01), sent base64-encoded (with
//! `AUTHENTICATE XOAUTH2`, `AUTH XOAUTH2`). The `user` names the mailbox; for an app-only token it
//! is the mailbox the app acts on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::secret::Secret;

/// The unencoded initial response, for clients (such as async-imap's `Authenticator`) that
/// base64-encode it themselves.
pub fn initial_response(user: &str, token: &Secret) -> Secret {
    Secret::new(format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose()
    ))
}

/// The base64-encoded initial response, as sent on the wire.
pub fn encoded_initial_response(user: &str, token: &Secret) -> Secret {
    Secret::new(STANDARD.encode(initial_response(user, token).expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_response_is_the_documented_one() {
        let token = Secret::new("eyJ0eXAi.x.y");
        assert_eq!(
            initial_response("sales@contoso.com", &token).expose(),
            "user=sales@contoso.com\u{1}auth=Bearer eyJ0eXAi.x.y\u{1}\u{1}"
        );
        // The example of Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth".
        assert_eq!(
            encoded_initial_response(
                "test@contoso.onmicrosoft.com",
                &Secret::new("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
            )
            .expose(),
            "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
        );
    }
}
