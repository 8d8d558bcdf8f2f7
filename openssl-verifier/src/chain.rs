//! The server's chain verified as libpq (psql, psycopg) and Python's `ssl` (asyncpg) verify
//! it: `X509_verify_cert` of the system's OpenSSL against the `sslrootcert` roots only, the
//! "ssl_server" purpose and the machine's security level, then libpq's host name rules.

use std::sync::OnceLock;

use openssl::ssl::{SslContext, SslMethod};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509PurposeId, X509Ref, X509StoreContext, X509VerifyResult};

use crate::names::{certificate_names, check_host, libpq_ip};
use crate::wire::{CertFacts, ChainRequest, ChainVerdict, Refusal, RefusalKind};

/// The whole check for one handshake: the roots read, the chain, the host.
pub fn verify(request: ChainRequest) -> ChainVerdict {
    match verify_with_roots(&request) {
        Ok(()) => ChainVerdict::Verified,
        Err(refusal) => ChainVerdict::Refused(refusal),
    }
}

fn verify_with_roots(request: &ChainRequest) -> Result<(), Refusal> {
    let source = &request.roots_source;
    let unreadable = |why: String| Refusal {
        kind: RefusalKind::Unreadable,
        message: format!("could not read root certificate file \"{source}\": {why}"),
        cert: None,
    };
    let roots = X509::stack_from_pem(&request.roots_pem).map_err(|e| unreadable(e.to_string()))?;
    if roots.is_empty() {
        return Err(unreadable("no certificate found".into()));
    }
    let store = trust_store(roots).map_err(|e| unreadable(e.to_string()))?;
    let intermediates: Vec<&[u8]> = request.intermediates.iter().map(Vec::as_slice).collect();
    verify_chain(
        &store,
        &request.end_entity,
        &intermediates,
        request.host.as_deref(),
    )
}

fn trust_store(roots: Vec<X509>) -> Result<X509Store, openssl::error::ErrorStack> {
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

/// The chain through `X509_verify_cert`, then (verify-full) the host name by libpq's rules.
pub fn verify_chain(
    store: &X509Store,
    end_entity: &[u8],
    intermediates: &[&[u8]],
    host: Option<&str>,
) -> Result<(), Refusal> {
    let unreadable = |e: openssl::error::ErrorStack| Refusal {
        kind: RefusalKind::Unreadable,
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
        return Err(chain_refusal(result, depth, cert));
    }
    match host {
        Some(host) => check_host(&leaf, host),
        None => Ok(()),
    }
}

fn chain_refusal(result: X509VerifyResult, depth: u32, cert: Option<Box<CertFacts>>) -> Refusal {
    let which = if depth == 0 {
        "the server's certificate".to_string()
    } else {
        format!("the certificate at depth {depth} of the chain")
    };
    let subject = cert
        .as_ref()
        .map(|c| format!(" ({})", c.subject))
        .unwrap_or_default();
    Refusal {
        kind: RefusalKind::Chain {
            verify_code: result.as_raw(),
        },
        message: format!("{}: {which}{subject}", result.error_string()),
        cert,
    }
}

pub(crate) fn facts(cert: &X509Ref, depth: u32, host: Option<&str>) -> CertFacts {
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

#[cfg(test)]
mod tests {
    use crate::wire::verify_codes as codes;
    use openssl_sys as ffi;

    /// aksara names reasons after these numbers without OpenSSL's crate: they must be OpenSSL's.
    #[test]
    fn the_wire_verify_codes_are_openssls() {
        let pairs = [
            (
                codes::UNABLE_TO_GET_ISSUER_CERT,
                ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
            ),
            (
                codes::CERT_NOT_YET_VALID,
                ffi::X509_V_ERR_CERT_NOT_YET_VALID,
            ),
            (codes::CERT_HAS_EXPIRED, ffi::X509_V_ERR_CERT_HAS_EXPIRED),
            (codes::CRL_NOT_YET_VALID, ffi::X509_V_ERR_CRL_NOT_YET_VALID),
            (codes::CRL_HAS_EXPIRED, ffi::X509_V_ERR_CRL_HAS_EXPIRED),
            (
                codes::DEPTH_ZERO_SELF_SIGNED_CERT,
                ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
            ),
            (
                codes::SELF_SIGNED_CERT_IN_CHAIN,
                ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
            ),
            (
                codes::UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            ),
            (
                codes::UNABLE_TO_VERIFY_LEAF_SIGNATURE,
                ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
            ),
            (codes::INVALID_PURPOSE, ffi::X509_V_ERR_INVALID_PURPOSE),
            (codes::CERT_UNTRUSTED, ffi::X509_V_ERR_CERT_UNTRUSTED),
            (codes::HOSTNAME_MISMATCH, ffi::X509_V_ERR_HOSTNAME_MISMATCH),
            (
                codes::IP_ADDRESS_MISMATCH,
                ffi::X509_V_ERR_IP_ADDRESS_MISMATCH,
            ),
            (codes::EE_KEY_TOO_SMALL, ffi::X509_V_ERR_EE_KEY_TOO_SMALL),
            (codes::CA_KEY_TOO_SMALL, ffi::X509_V_ERR_CA_KEY_TOO_SMALL),
            (codes::CA_MD_TOO_WEAK, ffi::X509_V_ERR_CA_MD_TOO_WEAK),
        ];
        for (wire, openssl) in pairs {
            assert_eq!(wire, openssl);
        }
    }
}
