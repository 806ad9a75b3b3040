//! The mock's own NTLMv2 verifier (MS-NLMP), independent of any client's NTLM code: it answers
//! a NEGOTIATE with a CHALLENGE and checks an AUTHENTICATE's NTProofStr against the seeded
//! password. NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) + domain));
//! NTProofStr = HMAC-MD5(NTOWFv2, server challenge ‖ blob). The MIC and channel bindings are
//! not checked.

use hmac::{Hmac, KeyInit as _, Mac as _};
use md4::{Digest as _, Md4};
use md5::Md5;

const SIGNATURE: &[u8] = b"NTLMSSP\0";
const UNICODE: u32 = 0x0000_0001;
const OEM: u32 = 0x0000_0002;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NTLM: u32 = 0x0000_0200;
const ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const TARGET_INFO: u32 = 0x0080_0000;
const VERSION: u32 = 0x0200_0000;

/// The message type of a decoded NTLM token (1, 2 or 3), if it is one.
pub(crate) fn message_type(token: &[u8]) -> Option<u32> {
    if token.len() < 12 || !token.starts_with(SIGNATURE) {
        return None;
    }
    Some(u32::from_le_bytes([
        token[8], token[9], token[10], token[11],
    ]))
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn field(token: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes([*token.get(at)?, *token.get(at + 1)?]));
    let offset = u32::from_le_bytes([
        *token.get(at + 4)?,
        *token.get(at + 5)?,
        *token.get(at + 6)?,
        *token.get(at + 7)?,
    ]);
    let offset = usize::try_from(offset).ok()?;
    token.get(offset..offset.checked_add(len)?)
}

/// The CHALLENGE (type 2) answering `negotiate`, for `challenge`, at `filetime` (100 ns since
/// 1601), naming the domain `domain` (NetBIOS, e.g. `CONTOSO`).
pub(crate) fn challenge_message(
    negotiate: &[u8],
    challenge: [u8; 8],
    domain: &str,
    filetime: u64,
) -> Vec<u8> {
    let client_flags = negotiate
        .get(12..16)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let flags = (client_flags & !OEM)
        | UNICODE
        | REQUEST_TARGET
        | NTLM
        | ALWAYS_SIGN
        | TARGET_TYPE_DOMAIN
        | EXTENDED_SESSIONSECURITY
        | TARGET_INFO
        | VERSION;
    let target = utf16le(domain);
    let mut info = Vec::new();
    let mut av = |id: u16, value: &[u8]| {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
        info.extend_from_slice(value);
    };
    av(2, &target);
    av(1, &utf16le("EXCH01"));
    av(
        4,
        &utf16le(&format!("{}.local", domain.to_ascii_lowercase())),
    );
    av(
        3,
        &utf16le(&format!("exch01.{}.local", domain.to_ascii_lowercase())),
    );
    av(7, &filetime.to_le_bytes());
    av(0, &[]);
    let header_len = 56usize;
    let mut out = Vec::with_capacity(header_len + target.len() + info.len());
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&2u32.to_le_bytes());
    let target_len = u16::try_from(target.len()).unwrap_or(0);
    out.extend_from_slice(&target_len.to_le_bytes());
    out.extend_from_slice(&target_len.to_le_bytes());
    out.extend_from_slice(&(header_len as u32).to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&challenge);
    out.extend_from_slice(&[0u8; 8]);
    let info_len = u16::try_from(info.len()).unwrap_or(0);
    out.extend_from_slice(&info_len.to_le_bytes());
    out.extend_from_slice(&info_len.to_le_bytes());
    out.extend_from_slice(&((header_len + target.len()) as u32).to_le_bytes());
    // Version: 10.0 build 17763, NTLM revision 15.
    out.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 15]);
    out.extend_from_slice(&target);
    out.extend_from_slice(&info);
    out
}

/// The user and domain an AUTHENTICATE (type 3) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticate {
    pub user: String,
    pub domain: String,
    nt_response: Vec<u8>,
}

fn text(bytes: &[u8], unicode: bool) -> Option<String> {
    if unicode {
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    } else {
        std::str::from_utf8(bytes).ok().map(str::to_string)
    }
}

/// Reads an AUTHENTICATE (type 3) message; `None` when it is not one or carries no NTLMv2
/// response.
pub(crate) fn parse_authenticate(token: &[u8]) -> Option<Authenticate> {
    if message_type(token)? != 3 || token.len() < 64 {
        return None;
    }
    let flags = u32::from_le_bytes([token[60], token[61], token[62], token[63]]);
    let unicode = flags & UNICODE != 0;
    let nt_response = field(token, 20)?.to_vec();
    // NTLMv2: a 16-byte NTProofStr and a blob of at least 28 bytes.
    if nt_response.len() < 16 + 28 {
        return None;
    }
    Some(Authenticate {
        domain: text(field(token, 28)?, unicode)?,
        user: text(field(token, 36)?, unicode)?,
        nt_response,
    })
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Option<Hmac<Md5>> {
    let mut mac = Hmac::<Md5>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac)
}

impl Authenticate {
    /// Whether the NTLMv2 response proves `password` for this user and domain, against the
    /// server challenge that was sent.
    pub(crate) fn verify(&self, password: &str, challenge: &[u8; 8]) -> bool {
        let nt_hash = Md4::digest(utf16le(password));
        let identity = utf16le(&format!("{}{}", self.user.to_uppercase(), self.domain));
        let Some(ntowf) = hmac_md5(&nt_hash, &[&identity]) else {
            return false;
        };
        let ntowf = ntowf.finalize().into_bytes();
        let (proof, blob) = self.nt_response.split_at(16);
        hmac_md5(&ntowf, &[challenge, blob]).is_some_and(|mac| mac.verify_slice(proof).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AUTHENTICATE message as a client computes it, from the same formulas.
    pub(crate) fn authenticate_for(
        user: &str,
        domain: &str,
        password: &str,
        challenge: &[u8; 8],
    ) -> Vec<u8> {
        let blob = [
            [1u8, 1, 0, 0, 0, 0, 0, 0].as_slice(),
            &[7u8; 8],
            &[9u8; 8],
            &[0u8; 8],
        ]
        .concat();
        let nt_hash = Md4::digest(utf16le(password));
        let identity = utf16le(&format!("{}{domain}", user.to_uppercase()));
        let ntowf = hmac_md5(&nt_hash, &[&identity])
            .unwrap()
            .finalize()
            .into_bytes();
        let proof = hmac_md5(&ntowf, &[challenge, &blob])
            .unwrap()
            .finalize()
            .into_bytes();
        let nt = [proof.as_slice(), &blob].concat();
        let (d, u) = (utf16le(domain), utf16le(user));
        let mut out = Vec::new();
        out.extend_from_slice(SIGNATURE);
        out.extend_from_slice(&3u32.to_le_bytes());
        let mut payload_at = 64u32;
        let mut fields = Vec::new();
        for part in [&[][..], &nt, &d, &u, &[], &[]] {
            let len = part.len() as u16;
            fields.extend_from_slice(&len.to_le_bytes());
            fields.extend_from_slice(&len.to_le_bytes());
            fields.extend_from_slice(&payload_at.to_le_bytes());
            payload_at += u32::from(len);
        }
        out.extend_from_slice(&fields);
        out.extend_from_slice(&UNICODE.to_le_bytes());
        out.extend_from_slice(&nt);
        out.extend_from_slice(&d);
        out.extend_from_slice(&u);
        out
    }

    #[test]
    fn a_right_password_verifies_and_a_wrong_one_does_not() {
        let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
        let token = authenticate_for("adele", "CONTOSO", "Secret!", &challenge);
        assert_eq!(message_type(&token), Some(3));
        let auth = parse_authenticate(&token).unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.domain.as_str()),
            ("adele", "CONTOSO")
        );
        assert!(auth.verify("Secret!", &challenge));
        assert!(!auth.verify("secret!", &challenge));
        assert!(!auth.verify("Secret!", &[0; 8]));
        assert!(parse_authenticate(b"NTLMSSP\0\x03\0\0\0garbage").is_none());
        assert!(parse_authenticate(&token[..40]).is_none());
    }

    #[test]
    fn the_challenge_is_a_type_2_message_with_target_info() {
        let msg = challenge_message(&[], [9; 8], "CONTOSO", 1);
        assert_eq!(message_type(&msg), Some(2));
        assert_eq!(&msg[24..32], &[9; 8]);
        assert_eq!(field(&msg, 12).unwrap(), utf16le("CONTOSO").as_slice());
        assert!(field(&msg, 40).unwrap().ends_with(&[0, 0, 0, 0]));
    }
}
