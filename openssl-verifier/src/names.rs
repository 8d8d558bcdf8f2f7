//! libpq's host name rules for verify-full (fe-secure-openssl.c, fe-secure-common.c): which
//! names of a certificate count for a host, how a name matches, and what an address is.

use std::net::Ipv6Addr;

use openssl::nid::Nid;
use openssl::x509::X509Ref;

use crate::chain::facts;
use crate::wire::{Refusal, RefusalKind};

/// The names of a certificate as libpq reads them for a host of one kind (IP or DNS).
pub(crate) struct Names {
    pub(crate) names: Vec<String>,
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
pub(crate) fn certificate_names(cert: &X509Ref, host_is_ip: bool) -> Names {
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
pub(crate) fn check_host(cert: &X509Ref, host: &str) -> Result<(), Refusal> {
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
    Err(Refusal {
        kind: RefusalKind::Name,
        message,
        cert: Some(Box::new(facts(cert, 0, Some(host)))),
    })
}

/// `pq_verify_peer_name_matches_certificate_name` (fe-secure-common.c): an exact match or a
/// leftmost `*.` wildcard standing for one label, case-insensitive; a name with an embedded
/// NUL never matches.
pub(crate) fn name_matches(name: &[u8], host: &[u8]) -> bool {
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
pub(crate) fn libpq_ip(host: &str) -> Option<Vec<u8>> {
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
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::X509;

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
        assert_eq!(refused.kind, RefusalKind::Name);
        assert_eq!(
            refused.message,
            "server certificate for \"10.0.0.2\" does not match host name \"10.0.0.1\""
        );
        // inet_aton's forms are addresses too.
        assert!(check_host(&cert("x", &["IP:127.0.0.1"]), "127.1").is_ok());
    }
}
