//! Rendering a [`ConnString`] back to text: the URI and keyword/value forms, redacted or not.

use super::*;

impl ConnString {
    /// The URI form, whatever format was parsed. Everything is percent-encoded so that libpq
    /// and sqlx read it back identically. A string with a user but no host renders as libpq
    /// accepts it (`postgresql://app@/db`), which sqlx rejects; a resolved [`ConnConfig`]
    /// always has hosts, so its URLs work with both.
    pub fn to_url(&self, reveal: Reveal) -> String {
        let mut url = String::from("postgresql://");
        if self.user.is_some() || self.password.is_some() {
            if let Some(user) = &self.user {
                url.push_str(&encode(user, COMPONENT));
            }
            if let Some(password) = &self.password {
                url.push(':');
                match reveal {
                    Reveal::Redacted => url.push_str(REDACTED),
                    Reveal::Secret => url.push_str(&encode(password.expose(), COMPONENT)),
                }
            }
            url.push('@');
        }

        let mut query: Vec<String> = Vec::new();
        // The url crate (sqlx) rejects an empty host after a port or after credentials, so
        // hosts go in the authority when every host is given; a socket directory is then
        // percent-encoded (%2Ftmp), which libpq and sqlx both read as a socket. Without
        // credentials the readable `?host=/var/run/postgresql` form is used instead.
        let has_credentials = self.user.is_some() || self.password.is_some();
        let in_authority = !self.hosts.is_empty()
            && self.hosts.iter().all(|spec| spec.host.is_some())
            && (has_credentials || !self.hosts.iter().any(HostSpec::is_socket));
        if in_authority {
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|spec| {
                    let host = spec.host.as_deref().unwrap_or_default();
                    let mut rendered = if host.contains(':') {
                        format!("[{}]", encode(host, IPV6_HOST))
                    } else {
                        encode(host, COMPONENT)
                    };
                    if let Some(port) = spec.port {
                        rendered.push_str(&format!(":{port}"));
                    }
                    rendered
                })
                .collect();
            url.push_str(&hosts.join(","));
        } else {
            if self.lists_hosts() {
                let hosts: Vec<String> = self
                    .hosts
                    .iter()
                    .map(|spec| encode(spec.host.as_deref().unwrap_or_default(), QUERY_VALUE))
                    .collect();
                query.push(format!("host={}", hosts.join(",")));
            }
            if let Some(ports) = self.port_list() {
                query.push(format!("port={ports}"));
            }
        }

        if let Some(dbname) = &self.dbname {
            url.push('/');
            url.push_str(&encode(dbname, COMPONENT));
        }

        for (key, value) in self.parameters(reveal) {
            query.push(format!(
                "{}={}",
                encode(key, COMPONENT),
                encode(&value, QUERY_VALUE)
            ));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// The keyword/value form: `host=localhost port=5432 user=app dbname=app`, values quoted
    /// only when they must be.
    pub fn to_keyword_value(&self, reveal: Reveal) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.lists_hosts() {
            let hosts: Vec<&str> = self
                .hosts
                .iter()
                .map(|spec| spec.host.as_deref().unwrap_or_default())
                .collect();
            pairs.push(("host", hosts.join(",")));
        }
        if let Some(ports) = self.port_list() {
            pairs.push(("port", ports));
        }
        if let Some(user) = &self.user {
            pairs.push(("user", user.clone()));
        }
        if let Some(password) = &self.password {
            let shown = match reveal {
                Reveal::Redacted => REDACTED,
                Reveal::Secret => password.expose(),
            };
            pairs.push(("password", shown.to_owned()));
        }
        if let Some(dbname) = &self.dbname {
            pairs.push(("dbname", dbname.clone()));
        }
        pairs.extend(self.parameters(reveal));
        pairs
            .iter()
            .map(|(key, value)| format!("{key}={}", quote_keyword_value(value)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the host list must be written out: a name is given, or several empty ones
    /// (`host=,` means the default host twice; leaving it out would mean it once).
    fn lists_hosts(&self) -> bool {
        self.hosts.len() > 1 || self.hosts.iter().any(|spec| spec.host.is_some())
    }

    /// Renders in the format it was written in.
    pub fn render(&self, reveal: Reveal) -> String {
        match self.format {
            Format::Uri => self.to_url(reveal),
            Format::KeyValue => self.to_keyword_value(reveal),
        }
    }

    /// The ports as one libpq list, or None when no port was given. Equal ports on every host
    /// collapse to one, which libpq applies to all hosts.
    fn port_list(&self) -> Option<String> {
        if self.hosts.iter().all(|spec| spec.port.is_none()) {
            return None;
        }
        let first = self.hosts[0].port;
        if self.hosts.len() > 1 && self.hosts.iter().all(|spec| spec.port == first) {
            return first.map(|port| port.to_string());
        }
        let ports: Vec<String> = self
            .hosts
            .iter()
            .map(|spec| spec.port.map(|port| port.to_string()).unwrap_or_default())
            .collect();
        Some(ports.join(","))
    }

    /// The parameters after host, port, user, password and dbname, in rendering order.
    fn parameters(&self, reveal: Reveal) -> Vec<(&str, String)> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(sslmode) = self.sslmode {
            params.push(("sslmode", sslmode.as_str().to_owned()));
        }
        if let Some(timeout) = self.connect_timeout {
            params.push(("connect_timeout", timeout.to_string()));
        }
        if let Some(name) = &self.application_name {
            params.push(("application_name", name.clone()));
        }
        if let Some(cert) = &self.sslrootcert {
            params.push(("sslrootcert", cert.clone()));
        }
        if let Some(options) = &self.options {
            params.push(("options", options.clone()));
        }
        for (key, value) in &self.unknown {
            let value = if reveal == Reveal::Redacted && is_secret_key(key) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            params.push((key.as_str(), value));
        }
        params
    }
}

impl fmt::Display for ConnString {
    /// The redacted URI, safe for logs and terminals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url(Reveal::Redacted))
    }
}

fn quote_keyword_value(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| is_c_space(c) || c == '\'' || c == '\\');
    if !needs_quotes {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}
