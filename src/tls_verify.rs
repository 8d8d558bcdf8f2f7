//! The server's certificate verified the way libpq (psql, psycopg) and Python's `ssl`
//! (asyncpg) verify it: by the system's OpenSSL, against the `sslrootcert` certificates only,
//! with libpq's host name rules.
//!
//! sqlx verifies with rustls/webpki, which decides differently from OpenSSL: it refuses a
//! self-signed CA:TRUE certificate used as the server's own (CaUsedAsEndEntity), an X.509 v1
//! certificate, a certificate without subjectAltName (no fallback to the CN), an expired CA
//! among the roots goes unnoticed, and sqlx adds the Mozilla roots to `sslrootcert`. doctor
//! promises the verdict the application's driver will reach, so the chain goes through
//! `X509_verify_cert` of the same libssl3 and `/etc/ssl/openssl.cnf` psql loads (the security
//! level included: weak keys and SHA-1 signatures fail as they do there). rustls keeps the
//! transport, and its provider checks the handshake signatures first (OpenSSL when ring
//! refuses one, see [`verify_handshake_signature`]); the vendored sqlx-core asks [`factory`]
//! for the verifier (`set_server_cert_verifier`, an aksara patch).
//!
//! The typed reason travels back inside rustls's error as a [`Rejection`]
//! (`CertificateError::Other`), and `connect::certificate_failure` reads it by type.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::ssl::{SslContext, SslMethod};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509PurposeId, X509Ref, X509StoreContext, X509VerifyResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sqlx_core::net::tls::{CertificateInput, ServerCertRequest};

use crate::connect::CertReason;

/// Install the verifier for every TLS connection of this process (once).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        sqlx_core::net::tls::set_server_cert_verifier(factory);
    });
}

/// What a certificate in the server's chain says about itself, for the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject, one line (`CN=localhost`).
    pub subject: String,
    /// As OpenSSL prints them: `Jan  1 00:00:00 2020 GMT`.
    pub not_before: String,
    pub not_after: String,
    /// The names libpq compares with the host: every dNSName and iPAddress, then the CN when
    /// no subjectAltName of the host's kind is there.
    pub names: Vec<String>,
    /// 0: the server's own certificate; 1 its issuer, ...
    pub depth: u32,
}

/// Why the certificate was refused, as typed data (the error inside rustls's error).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub reason: CertReason,
    /// OpenSSL's words for the verify result, or libpq's for a name or a missing root file.
    pub message: String,
    /// The certificate the refusal is about, when there is one (boxed: errors stay small).
    pub cert: Option<Box<CertFacts>>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// libpq's default root file when `sslrootcert` is not set: `~/.postgresql/root.crt` (from
/// HOME, as libpq 16+ and psycopg's bundled libpq find it; libpq 15 asks the passwd entry,
/// which is the same HOME for a login shell).
pub fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os(crate::envvars::HOME).filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".postgresql").join("root.crt"))
}

/// The hook sqlx-core calls for every handshake. Verifying: an OpenSSL store holding only the
/// given roots (libpq loads only that file), or libpq's default file. Not verifying (`require`
/// and below without a root certificate): no chain check, as libpq; the handshake signatures
/// are checked either way.
fn factory(
    request: ServerCertRequest<'_>,
) -> Result<Arc<dyn ServerCertVerifier>, Box<dyn std::error::Error + Send + Sync>> {
    if !request.verify_chain {
        return Ok(Arc::new(OpensslVerifier {
            store: None,
            host: None,
            provider: request.provider,
        }));
    }
    let (pem, source) = match request.root_cert {
        Some(CertificateInput::Inline(pem)) => (pem.clone(), "(inline)".to_string()),
        Some(CertificateInput::File(path)) => (read_root_file(path)?, path.display().to_string()),
        None => {
            let path = default_root_cert().ok_or_else(|| Rejection {
                reason: CertReason::NoRootCert,
                message: "could not get home directory to locate root certificate file".into(),
                cert: None,
            })?;
            (read_root_file(&path)?, path.display().to_string())
        }
    };
    let unreadable = |why: String| Rejection {
        reason: CertReason::Other,
        message: format!("could not read root certificate file \"{source}\": {why}"),
        cert: None,
    };
    let roots = X509::stack_from_pem(&pem).map_err(|e| unreadable(e.to_string()))?;
    if roots.is_empty() {
        return Err(unreadable("no certificate found".into()).into());
    }
    Ok(Arc::new(OpensslVerifier {
        store: Some(trust_store(roots)?),
        host: request.verify_hostname.then(|| request.hostname.to_owned()),
        provider: request.provider,
    }))
}

/// libpq under verify-ca/verify-full (`initialize_SSL`, fe-secure-openssl.c): a root file
/// that is not there is refused in libpq's words. `system` is a file name here, as libpq 15
/// (Debian 12's psql) and asyncpg read it; libpq 16+ reads it as the system's CAs (the hint
/// says so).
fn read_root_file(path: &Path) -> Result<Vec<u8>, Rejection> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Rejection {
            reason: CertReason::NoRootCert,
            message: format!(
                "root certificate file \"{}\" does not exist",
                path.display()
            ),
            cert: None,
        },
        _ => Rejection {
            reason: CertReason::Other,
            message: format!(
                "could not read root certificate file \"{}\": {e}",
                path.display()
            ),
            cert: None,
        },
    })
}

fn trust_store(roots: Vec<X509>) -> Result<X509Store, Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in roots {
        builder.add_cert(cert)?;
    }
    // What libssl's ssl_verify_cert_chain sets for a client checking a server: the
    // "ssl_server" purpose and the context's security level as the authentication level.
    builder.set_purpose(X509PurposeId::SSL_SERVER)?;
    let mut param = X509VerifyParam::new()?;
    param.set_auth_level(security_level());
    builder.set_param(&param)?;
    Ok(builder.build())
}

/// The security level a fresh client context gets from this machine's OpenSSL configuration
/// (Debian: 2, from its build and /etc/ssl/openssl.cnf), as libpq's SSL_CTX_new gets it.
fn security_level() -> i32 {
    static LEVEL: OnceLock<i32> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        SslContext::builder(SslMethod::tls_client())
            .map(|b| b.build().security_level())
            .ok()
            .and_then(|level| i32::try_from(level).ok())
            .unwrap_or(1)
    })
}

struct OpensslVerifier {
    /// None: the chain is not verified (`require` and below, as libpq).
    store: Option<X509Store>,
    /// Some under verify-full: the host name as the URL gives it.
    host: Option<String>,
    /// rustls's provider: it checks the handshake signatures first (see
    /// [`verify_handshake_signature`] for when OpenSSL does).
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for OpensslVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslVerifier")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for OpensslVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(store) = &self.store else {
            return Ok(ServerCertVerified::assertion());
        };
        verify_chain(store, end_entity, intermediates, self.host.as_deref())
            .map(|()| ServerCertVerified::assertion())
            .map_err(|rejection| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    rejection,
                ))))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
            .or_else(|_| verify_handshake_signature(message, cert, dss, false))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
            .or_else(|_| verify_handshake_signature(message, cert, dss, true))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        HANDSHAKE_SCHEMES.to_vec()
    }
}

fn other_error(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// The signature schemes offered to the server: those of rustls's ring provider (SHA-1 and
/// SHA-224 are not offered, as OpenSSL 3 does not use them at security level 1 and up).
const HANDSHAKE_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// How a scheme signs: the digest, and the key type (with the curve TLS 1.3 binds to it).
enum Signing {
    RsaPkcs1(MessageDigest),
    RsaPss(MessageDigest),
    Ecdsa(MessageDigest, Nid),
    EdDsa(Id),
}

fn signing_of(scheme: SignatureScheme, tls13: bool) -> Option<Signing> {
    use SignatureScheme as S;
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

/// The handshake signature (the server proving it holds the certificate's key), checked by
/// OpenSSL as libssl checks it, when rustls's provider refused it: ring refuses RSA keys under
/// 2048 bits even where nothing is verified (`sslmode=require`), where psql and asyncpg
/// connect, and webpki cannot read an X.509 v1 certificate. Either library accepts only a
/// valid signature; ring goes first so that a connection that verifies nothing does not pay
/// OpenSSL's start-up (~1.5 ms).
fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let unadvertised = || rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme;
    let signing = signing_of(dss.scheme, tls13).ok_or_else(unadvertised)?;
    let key = X509::from_der(cert)
        .and_then(|x| x.public_key())
        .map_err(other_error)?;
    let fits = match &signing {
        Signing::RsaPkcs1(_) | Signing::RsaPss(_) => key.id() == Id::RSA,
        // TLS 1.2 leaves the curve to the key; TLS 1.3 names it in the scheme.
        Signing::Ecdsa(_, curve) => {
            key.id() == Id::EC
                && (!tls13
                    || key.ec_key().ok().and_then(|ec| ec.group().curve_name()) == Some(*curve))
        }
        Signing::EdDsa(id) => key.id() == *id,
    };
    if !fits {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature,
        ));
    }
    let checked = check_signature(&key, &signing, message, dss.signature()).map_err(other_error)?;
    if checked {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature,
        ))
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

/// The chain through `X509_verify_cert`, then (verify-full) the host name by libpq's rules.
pub fn verify_chain(
    store: &X509Store,
    end_entity: &[u8],
    intermediates: &[CertificateDer<'_>],
    host: Option<&str>,
) -> Result<(), Rejection> {
    let unreadable = |e: openssl::error::ErrorStack| Rejection {
        reason: CertReason::Other,
        message: format!("the server's certificate could not be read: {e}"),
        cert: None,
    };
    let leaf = X509::from_der(end_entity).map_err(unreadable)?;
    let mut chain = Stack::new().map_err(unreadable)?;
    for der in intermediates {
        chain
            .push(X509::from_der(der).map_err(unreadable)?)
            .map_err(unreadable)?;
    }
    let mut context = X509StoreContext::new().map_err(unreadable)?;
    let outcome = context
        .init(store, &leaf, &chain, |ctx| {
            let verified = ctx.verify_cert()?;
            let failed = (!verified).then(|| {
                let cert = ctx
                    .current_cert()
                    .map(|c| Box::new(facts(c, ctx.error_depth(), host)));
                (ctx.error(), ctx.error_depth(), cert)
            });
            Ok(failed)
        })
        .map_err(unreadable)?;
    if let Some((result, depth, cert)) = outcome {
        return Err(chain_rejection(result, depth, cert));
    }
    match host {
        Some(host) => check_host(&leaf, host),
        None => Ok(()),
    }
}

fn chain_rejection(
    result: X509VerifyResult,
    depth: u32,
    cert: Option<Box<CertFacts>>,
) -> Rejection {
    let which = if depth == 0 {
        "the server's certificate".to_string()
    } else {
        format!("the certificate at depth {depth} of the chain")
    };
    let subject = cert
        .as_ref()
        .map(|c| format!(" ({})", c.subject))
        .unwrap_or_default();
    Rejection {
        reason: reason_of(result.as_raw()),
        message: format!("{}: {which}{subject}", result.error_string()),
        cert,
    }
}

/// OpenSSL's verify result, by its number (`X509_V_ERR_*`), as the reason doctor reports.
pub fn reason_of(code: i32) -> CertReason {
    use openssl_sys as ffi;
    match code {
        ffi::X509_V_ERR_CERT_HAS_EXPIRED | ffi::X509_V_ERR_CRL_HAS_EXPIRED => CertReason::Expired,
        ffi::X509_V_ERR_CERT_NOT_YET_VALID | ffi::X509_V_ERR_CRL_NOT_YET_VALID => {
            CertReason::NotYetValid
        }
        ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | ffi::X509_V_ERR_CERT_UNTRUSTED => CertReason::UnknownIssuer,
        ffi::X509_V_ERR_EE_KEY_TOO_SMALL | ffi::X509_V_ERR_CA_KEY_TOO_SMALL => CertReason::WeakKey,
        ffi::X509_V_ERR_CA_MD_TOO_WEAK => CertReason::WeakDigest,
        ffi::X509_V_ERR_HOSTNAME_MISMATCH | ffi::X509_V_ERR_IP_ADDRESS_MISMATCH => {
            CertReason::NameMismatch
        }
        _ => CertReason::Other,
    }
}

fn facts(cert: &X509Ref, depth: u32, host: Option<&str>) -> CertFacts {
    let subject = cert
        .subject_name()
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = String::from_utf8_lossy(entry.data().as_slice()).into_owned();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let host_is_ip = host.is_some_and(|h| libpq_ip(h).is_some());
    CertFacts {
        subject,
        not_before: cert.not_before().to_string(),
        not_after: cert.not_after().to_string(),
        names: certificate_names(cert, host_is_ip).names,
        depth,
    }
}

/// The names of a certificate as libpq reads them for a host of one kind (IP or DNS).
struct Names {
    names: Vec<String>,
    /// The raw names with what each is: a DNS name / CN (compared as text) or an address.
    entries: Vec<Entry>,
}

enum Entry {
    Text(Vec<u8>),
    Address(Vec<u8>),
}

/// `pgtls_verify_peer_name_matches_certificate_guts` (fe-secure-openssl.c): every dNSName and
/// iPAddress of the subjectAltName, in order; the first CN only when there is no
/// subjectAltName of the host's own kind.
fn certificate_names(cert: &X509Ref, host_is_ip: bool) -> Names {
    let mut out = Names {
        names: Vec::new(),
        entries: Vec::new(),
    };
    let mut check_cn = true;
    for name in cert.subject_alt_names().into_iter().flatten() {
        if let Some(dns) = name.dnsname() {
            check_cn &= host_is_ip;
            out.names.push(dns.to_owned());
            out.entries.push(Entry::Text(dns.as_bytes().to_vec()));
        } else if let Some(ip) = name.ipaddress() {
            check_cn &= !host_is_ip;
            out.names.push(address_text(ip));
            out.entries.push(Entry::Address(ip.to_vec()));
        }
    }
    if check_cn && let Some(cn) = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next() {
        let bytes = cn.data().as_slice().to_vec();
        out.names.push(String::from_utf8_lossy(&bytes).into_owned());
        out.entries.push(Entry::Text(bytes));
    }
    out
}

fn address_text(ip: &[u8]) -> String {
    match ip.len() {
        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(ip);
            Ipv6Addr::from(octets).to_string()
        }
        n => format!("(an address of {n} bytes)"),
    }
}

/// libpq's verify-full name check: the first name that matches wins; none matching is
/// libpq's `server certificate for "x" (and n other names) does not match host name "h"`.
fn check_host(cert: &X509Ref, host: &str) -> Result<(), Rejection> {
    let host_ip = libpq_ip(host);
    let names = certificate_names(cert, host_ip.is_some());
    let matched = names.entries.iter().any(|entry| match entry {
        Entry::Text(name) => name_matches(name, host.as_bytes()),
        Entry::Address(ip) => host_ip.as_deref() == Some(ip.as_slice()),
    });
    if matched {
        return Ok(());
    }
    let message = match names.names.as_slice() {
        [] => "could not get server's host name from server certificate".to_string(),
        [only] => format!("server certificate for \"{only}\" does not match host name \"{host}\""),
        [first, rest @ ..] => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \"{host}\"",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    };
    Err(Rejection {
        reason: CertReason::NameMismatch,
        message,
        cert: Some(Box::new(facts(cert, 0, Some(host)))),
    })
}

/// `pq_verify_peer_name_matches_certificate_name` (fe-secure-common.c): an exact match or a
/// leftmost `*.` wildcard standing for one label, case-insensitive; a name with an embedded
/// NUL never matches.
pub fn name_matches(name: &[u8], host: &[u8]) -> bool {
    if name.contains(&0) {
        return false;
    }
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    // wildcard_certificate_match: "*." + suffix, the host ends with the suffix and has no dot
    // before it, and at least one character stands for the star.
    if name.len() < 3 || !name.starts_with(b"*.") || name.len() > host.len() {
        return false;
    }
    let suffix = &name[1..];
    let start = host.len() - suffix.len();
    host[start..].eq_ignore_ascii_case(suffix) && !host[..start].contains(&b'.')
}

/// The host as libpq reads an address (`is_ip_address`: inet_aton for IPv4, which takes
/// `127.1` and `0x7f.0.0.1`; inet_pton for IPv6), as network-order bytes.
pub fn libpq_ip(host: &str) -> Option<Vec<u8>> {
    if let Some(v4) = inet_aton(host) {
        return Some(v4.to_vec());
    }
    host.parse::<Ipv6Addr>().ok().map(|a| a.octets().to_vec())
}

/// glibc's inet_aton: one to four parts, each decimal, octal (leading 0) or hex (0x); the
/// last part fills the remaining bytes.
fn inet_aton(text: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if room < 32 && *last >= (1u32 << room) {
        return None;
    }
    let mut address = 0u32;
    for (i, v) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    Some((address | last).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_libpq() {
        assert!(name_matches(b"*.example.com", b"db.example.com"));
        assert!(name_matches(b"*.EXAMPLE.com", b"DB.example.COM"));
        // One label only, and the star stands for at least one character.
        assert!(!name_matches(b"*.example.com", b"a.db.example.com"));
        assert!(!name_matches(b"*.example.com", b"example.com"));
        assert!(!name_matches(b"*.example.com", b".example.com"));
        // Only a leftmost "*." is a wildcard.
        assert!(!name_matches(b"db*.example.com", b"db1.example.com"));
        assert!(!name_matches(b"db.*.com", b"db.example.com"));
        // libpq accepts a wildcard over a single-label suffix (OpenSSL's own check does not).
        assert!(name_matches(b"*.com", b"example.com"));
        assert!(!name_matches(b"local\0host", b"local"));
        assert!(name_matches(b"LocalHost", b"localhost"));
    }

    #[test]
    fn addresses_are_read_as_inet_aton_and_inet_pton_read_them() {
        assert_eq!(libpq_ip("127.0.0.1"), Some(vec![127, 0, 0, 1]));
        assert_eq!(libpq_ip("127.1"), Some(vec![127, 0, 0, 1]));
        assert_eq!(libpq_ip("0x7f.0.0.1"), Some(vec![127, 0, 0, 1]));
        assert_eq!(libpq_ip("0177.0.0.1"), Some(vec![127, 0, 0, 1]));
        assert_eq!(libpq_ip("2130706433"), Some(vec![127, 0, 0, 1]));
        assert_eq!(libpq_ip("::1").map(|v| v.len()), Some(16));
        assert_eq!(libpq_ip("localhost"), None);
        assert_eq!(libpq_ip("256.0.0.1"), None);
        assert_eq!(libpq_ip("1.2.3.4.5"), None);
        assert_eq!(libpq_ip("db.example.com"), None);
    }

    /// A self-signed certificate with this CN and these subjectAltName entries.
    fn cert(common_name: &str, alt_names: &[&str]) -> X509 {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::x509::extension::SubjectAlternativeName;
        use openssl::x509::{X509Builder, X509NameBuilder};
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .unwrap();
        let name = name.build();
        let mut builder = X509Builder::new().unwrap();
        builder.set_version(2).unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(&key).unwrap();
        if !alt_names.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for entry in alt_names {
                match entry.strip_prefix("IP:") {
                    Some(ip) => san.ip(ip),
                    None => san.dns(entry),
                };
            }
            let san = san.build(&builder.x509v3_context(None, None)).unwrap();
            builder.append_extension(san).unwrap();
        }
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        builder.build()
    }

    fn names_for(cert: &X509, host: &str) -> Vec<String> {
        certificate_names(cert, libpq_ip(host).is_some()).names
    }

    #[test]
    fn the_cn_counts_only_without_a_subject_alt_name_of_the_hosts_kind() {
        // A DNS host: a dNSName hides the CN; an iPAddress does not.
        let dns_and_cn = cert("db.example.com", &["db.example.com", "IP:10.0.0.1"]);
        assert_eq!(
            names_for(&dns_and_cn, "db.example.com"),
            ["db.example.com", "10.0.0.1"]
        );
        let ip_only = cert("db.example.com", &["IP:10.0.0.1"]);
        assert_eq!(
            names_for(&ip_only, "db.example.com"),
            ["10.0.0.1", "db.example.com"]
        );
        assert!(check_host(&ip_only, "db.example.com").is_ok());
        // An address host: a dNSName does not hide the CN (libpq departs from RFC 6125 here).
        let with_dns = cert("10.0.0.1", &["db.example.com"]);
        assert!(check_host(&with_dns, "10.0.0.1").is_ok());
        assert!(check_host(&ip_only, "10.0.0.1").is_ok());
        // An iPAddress entry hides the CN from an address host.
        let other_ip = cert("10.0.0.1", &["IP:10.0.0.2"]);
        let refused = check_host(&other_ip, "10.0.0.1").unwrap_err();
        assert_eq!(refused.reason, CertReason::NameMismatch);
        assert_eq!(
            refused.message,
            "server certificate for \"10.0.0.2\" does not match host name \"10.0.0.1\""
        );
        // inet_aton's forms are addresses too.
        assert!(check_host(&cert("x", &["IP:127.0.0.1"]), "127.1").is_ok());
    }

    #[test]
    fn openssl_codes_map_to_reasons() {
        use openssl_sys as ffi;
        assert_eq!(
            reason_of(ffi::X509_V_ERR_CERT_HAS_EXPIRED),
            CertReason::Expired
        );
        assert_eq!(
            reason_of(ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
            CertReason::UnknownIssuer
        );
        assert_eq!(
            reason_of(ffi::X509_V_ERR_EE_KEY_TOO_SMALL),
            CertReason::WeakKey
        );
        assert_eq!(
            reason_of(ffi::X509_V_ERR_CA_MD_TOO_WEAK),
            CertReason::WeakDigest
        );
        assert_eq!(
            reason_of(ffi::X509_V_ERR_INVALID_PURPOSE),
            CertReason::Other
        );
    }
}
