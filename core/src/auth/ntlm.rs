//! NTLMv2 for HTTP (MS-NLMP carried as `Authorization: NTLM <base64>`, the way IIS and Exchange
//! Server take it): the NEGOTIATE and AUTHENTICATE messages of one handshake, made by sspi.
//! The password never leaves this module; only the messages derived from it do.

use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, Sspi, SspiImpl, Username,
};

use crate::model::PasswordAuth;

/// Why a handshake message could not be made.
#[derive(Debug, thiserror::Error)]
#[error("NTLM: {0}")]
pub struct NtlmError(String);

impl NtlmError {
    pub(crate) fn other(message: String) -> Self {
        Self(message)
    }
}

/// One NTLM handshake: [`Self::negotiate`], then [`Self::authenticate`] with the server's
/// challenge. A connection needs a new handshake; a handshake is never reused.
pub struct NtlmHandshake {
    ntlm: Ntlm,
    handle: <Ntlm as SspiImpl>::CredentialsHandle,
    /// The service principal name, `HTTP/<host>`.
    target: String,
}

impl std::fmt::Debug for NtlmHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmHandshake")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl NtlmHandshake {
    /// For `auth`'s account (`DOMAIN\user`, `user@domain` or `user`) towards `host`.
    pub fn new(auth: &PasswordAuth, host: &str) -> Result<Self, NtlmError> {
        let username = Username::parse(auth.username.trim()).map_err(|e| {
            NtlmError(format!(
                "the user name cannot be used ({e}); give DOMAIN\\user or user@domain"
            ))
        })?;
        let identity = AuthIdentity {
            username,
            password: auth.password.expose().to_owned().into(),
        };
        let mut ntlm = Ntlm::new();
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| NtlmError(e.to_string()))?;
        Ok(Self {
            ntlm,
            handle: acquired.credentials_handle,
            target: format!("HTTP/{host}"),
        })
    }

    /// The NEGOTIATE message (type 1).
    pub fn negotiate(&mut self) -> Result<Vec<u8>, NtlmError> {
        self.step(None)
    }

    /// The AUTHENTICATE message (type 3) answering the server's CHALLENGE (type 2).
    pub fn authenticate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.step(Some(challenge))
    }

    fn step(&mut self, challenge: Option<&[u8]>) -> Result<Vec<u8>, NtlmError> {
        let fail = |e: sspi::Error| NtlmError(e.to_string());
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input = challenge.map(|c| vec![SecurityBuffer::new(c.to_vec(), BufferType::Token)]);
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.handle)
            .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.target)
            .with_output(&mut output);
        if let Some(input) = input.as_mut() {
            builder = builder.with_input(input);
        }
        let result = self
            .ntlm
            .initialize_security_context_impl(&mut builder)
            .map_err(fail)?
            .resolve_to_result()
            .map_err(fail)?;
        if matches!(
            result.status,
            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
        ) {
            self.ntlm.complete_auth_token(&mut output).map_err(fail)?;
        }
        output
            .pop()
            .map(|b| b.buffer)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| NtlmError("sspi made an empty message".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn auth(username: &str) -> PasswordAuth {
        PasswordAuth {
            username: username.into(),
            password: Secret::new(String::from("Pa55w.rd")),
        }
    }

    #[test]
    fn negotiate_is_an_ntlm_type_1_message_and_a_bad_challenge_is_an_error() {
        for name in [
            "CONTOSO\\svc-exgate",
            "svc-exgate@contoso.com",
            "svc-exgate",
        ] {
            let mut handshake = NtlmHandshake::new(&auth(name), "mail.contoso.com").unwrap();
            let negotiate = handshake.negotiate().unwrap();
            assert_eq!(&negotiate[..8], b"NTLMSSP\0", "{name}");
            assert_eq!(negotiate[8], 1, "message type 1");
            assert!(handshake.authenticate(b"not a challenge").is_err());
        }
    }
}
