//! A handshake signature (the server proving it holds its certificate's key) checked by
//! OpenSSL as libssl checks it, for the ones rustls's ring provider refuses: RSA keys under
//! 2048 bits (even under `sslmode=require`, where psql and asyncpg connect) and keys in an
//! X.509 v1 certificate, which webpki cannot read. Either library accepts only a valid
//! signature.

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::x509::X509;

use crate::wire::{SignatureRequest, SignatureVerdict};

/// TLS `SignatureScheme` numbers (RFC 8446, 4.2.3) of the schemes aksara offers.
mod schemes {
    pub const RSA_PKCS1_SHA256: u16 = 0x0401;
    pub const RSA_PKCS1_SHA384: u16 = 0x0501;
    pub const RSA_PKCS1_SHA512: u16 = 0x0601;
    pub const ECDSA_NISTP256_SHA256: u16 = 0x0403;
    pub const ECDSA_NISTP384_SHA384: u16 = 0x0503;
    pub const ECDSA_NISTP521_SHA512: u16 = 0x0603;
    pub const RSA_PSS_SHA256: u16 = 0x0804;
    pub const RSA_PSS_SHA384: u16 = 0x0805;
    pub const RSA_PSS_SHA512: u16 = 0x0806;
    pub const ED25519: u16 = 0x0807;
    pub const ED448: u16 = 0x0808;
}

/// How a scheme signs: the digest, and the key type (with the curve TLS 1.3 binds to it).
enum Signing {
    RsaPkcs1(MessageDigest),
    RsaPss(MessageDigest),
    Ecdsa(MessageDigest, Nid),
    EdDsa(Id),
}

fn signing_of(scheme: u16, tls13: bool) -> Option<Signing> {
    use schemes as S;
    Some(match scheme {
        // PKCS#1 v1.5 signs no TLS 1.3 handshake (RFC 8446, 4.2.3).
        S::RSA_PKCS1_SHA256 if !tls13 => Signing::RsaPkcs1(MessageDigest::sha256()),
        S::RSA_PKCS1_SHA384 if !tls13 => Signing::RsaPkcs1(MessageDigest::sha384()),
        S::RSA_PKCS1_SHA512 if !tls13 => Signing::RsaPkcs1(MessageDigest::sha512()),
        S::RSA_PSS_SHA256 => Signing::RsaPss(MessageDigest::sha256()),
        S::RSA_PSS_SHA384 => Signing::RsaPss(MessageDigest::sha384()),
        S::RSA_PSS_SHA512 => Signing::RsaPss(MessageDigest::sha512()),
        S::ECDSA_NISTP256_SHA256 => Signing::Ecdsa(MessageDigest::sha256(), Nid::X9_62_PRIME256V1),
        S::ECDSA_NISTP384_SHA384 => Signing::Ecdsa(MessageDigest::sha384(), Nid::SECP384R1),
        S::ECDSA_NISTP521_SHA512 => Signing::Ecdsa(MessageDigest::sha512(), Nid::SECP521R1),
        S::ED25519 => Signing::EdDsa(Id::ED25519),
        S::ED448 => Signing::EdDsa(Id::ED448),
        _ => return None,
    })
}

/// The verdict on one handshake signature.
pub fn check(request: SignatureRequest) -> SignatureVerdict {
    let Some(signing) = signing_of(request.scheme, request.tls13) else {
        return SignatureVerdict::Unadvertised;
    };
    let unreadable = |e: openssl::error::ErrorStack| SignatureVerdict::Unreadable(e.to_string());
    let key = match X509::from_der(&request.cert).and_then(|x| x.public_key()) {
        Ok(key) => key,
        Err(e) => return unreadable(e),
    };
    let fits = match &signing {
        Signing::RsaPkcs1(_) | Signing::RsaPss(_) => key.id() == Id::RSA,
        // TLS 1.2 leaves the curve to the key; TLS 1.3 names it in the scheme.
        Signing::Ecdsa(_, curve) => {
            key.id() == Id::EC
                && (!request.tls13
                    || key.ec_key().ok().and_then(|ec| ec.group().curve_name()) == Some(*curve))
        }
        Signing::EdDsa(id) => key.id() == *id,
    };
    if !fits {
        return SignatureVerdict::BadSignature;
    }
    match check_signature(&key, &signing, &request.message, &request.signature) {
        Ok(true) => SignatureVerdict::Valid,
        Ok(false) => SignatureVerdict::BadSignature,
        Err(e) => unreadable(e),
    }
}

fn check_signature(
    key: &PKey<Public>,
    signing: &Signing,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, openssl::error::ErrorStack> {
    let mut verifier = match signing {
        Signing::RsaPkcs1(md) | Signing::RsaPss(md) | Signing::Ecdsa(md, _) => {
            Verifier::new(*md, key)?
        }
        Signing::EdDsa(_) => {
            return Verifier::new_without_digest(key)?.verify_oneshot(signature, message);
        }
    };
    match signing {
        Signing::RsaPkcs1(_) => verifier.set_rsa_padding(Padding::PKCS1)?,
        Signing::RsaPss(md) => {
            verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
            verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
            verifier.set_rsa_mgf1_md(*md)?;
        }
        _ => {}
    }
    verifier.update(message)?;
    verifier.verify(signature)
}
