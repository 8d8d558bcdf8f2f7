//! What a running server's own command line sets. A setting given there (`-c name=value`,
//! `--name=value`, or one of the postmaster's flags such as `-h`) wins over postgresql.conf
//! and over ALTER SYSTEM's postgresql.auto.conf (PostgreSQL's `PGC_S_ARGV` outranks
//! `PGC_S_FILE`), so a hint that says "edit postgresql.conf" cannot help a server started with
//! `-c listen_addresses=''` (a container entrypoint's first start, a `pg_ctl -o`, a script).
//!
//! The command line is read the way `ps` reads it: the socket's lock file
//! (`.s.PGSQL.<port>.lock`, first line the postmaster's pid) names the process, and
//! `/proc/<pid>/cmdline` holds its argv (the postmaster keeps its own; only its children
//! retitle themselves). The lock file is the server owner's and mode 0600; for another OS user
//! postgresql-common's `external_pid_file` (mode 0644) names the process instead, and where
//! neither can be read the callers say the command line may set it instead of guessing.

use std::io::Read;
use std::path::Path;

/// The argv of the postmaster that owns a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    pub pid: u32,
    argv: Vec<String>,
}

/// A setting as the command line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenSetting {
    pub value: String,
    /// The words that set it, as typed: `-c listen_addresses=`, `-h 127.0.0.1`, `-i`.
    pub written: String,
}

/// The postmaster's options that take a value (PostgreSQL 15 `postmaster.c`'s getopt string
/// `B:bc:C:D:d:EeFf:h:ijk:lN:OPp:r:S:sTt:W:-:`); the others are single-letter switches.
const TAKES_VALUE: &[char] = &[
    'B', 'c', 'C', 'D', 'd', 'f', 'h', 'k', 'N', 'p', 'r', 'S', 't', 'W', '-',
];

/// The most a command line is read to (Linux's own limit for argv is far above any server's).
const MOST_READ: u64 = 256 * 1024;

impl ServerCommand {
    /// The command line of the server whose socket for `port` is in `dir`; None when the lock
    /// file or the process cannot be read by this user, or the pid is not a postmaster's.
    pub fn at_socket(dir: &Path, port: u16) -> Option<ServerCommand> {
        ServerCommand::of_pid_file(&dir.join(format!(".s.PGSQL.{port}.lock")))
    }

    /// The command line of the postmaster whose pid is the first line of `file` (a socket's
    /// lock file, `postmaster.pid`, or an `external_pid_file`, which holds the pid alone).
    pub fn of_pid_file(file: &Path) -> Option<ServerCommand> {
        let text = read_bounded(file)?;
        let pid: u32 = String::from_utf8_lossy(&text)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()?;
        let raw = read_bounded(Path::new(&format!("/proc/{pid}/cmdline")))?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        // A lock file left by a crashed server may name a pid that another program has now.
        let program = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a))?;
        if program != "postgres" && program != "postmaster" {
            return None;
        }
        Some(ServerCommand { pid, argv })
    }

    pub fn from_argv(pid: u32, argv: Vec<String>) -> ServerCommand {
        ServerCommand { pid, argv }
    }

    /// A setting as the command line sets it (the last one wins, as in the server): the `-c`
    /// and `--` forms, and the flags that stand for a setting: `-h ADDRESSES` and `-i` (`*`)
    /// for `listen_addresses`, `-k FOLDERS` for `unix_socket_directories`, `-p` for `port`.
    pub fn given(&self, setting: &str) -> Option<GivenSetting> {
        let mut given = None;
        for (flag, value, written) in options(&self.argv) {
            let value = match (flag, setting) {
                ('i', "listen_addresses") => Some("*".to_string()),
                ('h', "listen_addresses") | ('k', "unix_socket_directories") | ('p', "port") => {
                    value
                }
                ('c' | '-', _) => value.as_deref().and_then(|v| {
                    let (name, value) = v.split_once('=')?;
                    // The server reads `--listen-addresses` as `listen_addresses`.
                    name.replace('-', "_")
                        .eq_ignore_ascii_case(setting)
                        .then(|| value.to_string())
                }),
                _ => None,
            };
            if let Some(value) = value {
                given = Some(GivenSetting { value, written });
            }
        }
        given
    }

    /// False when the command line sets `listen_addresses` empty: then this server is not the
    /// one answering over TCP at its port number, whatever is.
    pub fn listens_on_tcp(&self) -> bool {
        self.given("listen_addresses")
            .is_none_or(|listen| !listen.value.trim().is_empty())
    }
}

/// The flag that stands for `setting` on a postmaster's command line, for a hint's words.
pub fn flag_for(setting: &str) -> Option<&'static str> {
    match setting {
        "listen_addresses" => Some("-h"),
        "unix_socket_directories" => Some("-k"),
        "port" => Some("-p"),
        _ => None,
    }
}

/// The options of a postmaster argv as getopt reads them: (letter, value, the words typed).
/// Switches may be grouped (`-Fi`); a value follows its letter or is the next word.
fn options(argv: &[String]) -> Vec<(char, Option<String>, String)> {
    let mut found = Vec::new();
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        let Some(letters) = word.strip_prefix('-').filter(|l| !l.is_empty()) else {
            continue;
        };
        for (at, letter) in letters.char_indices() {
            if !TAKES_VALUE.contains(&letter) {
                found.push((letter, None, word.clone()));
                continue;
            }
            let rest = &letters[at + letter.len_utf8()..];
            let (value, written) = if rest.is_empty() {
                let next = words.next().cloned();
                let written = match &next {
                    Some(v) => format!("{word} {v}"),
                    None => word.clone(),
                };
                (next, written)
            } else {
                (Some(rest.to_string()), word.clone())
            };
            found.push((letter, value, written));
            break;
        }
    }
    found
}

fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MOST_READ)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(words: &[&str]) -> Option<(String, String)> {
        let argv = words.iter().map(|w| w.to_string()).collect();
        ServerCommand::from_argv(1, argv)
            .given("listen_addresses")
            .map(|g| (g.value, g.written))
    }

    #[test]
    fn reads_listen_addresses_in_every_form_the_server_takes() {
        let pg = "/usr/lib/postgresql/15/bin/postgres";
        assert_eq!(listen(&[pg, "-D", "/d"]), None);
        assert_eq!(
            listen(&[pg, "-D", "/d", "-c", "listen_addresses="]),
            Some(("".into(), "-c listen_addresses=".into()))
        );
        assert_eq!(
            listen(&[pg, "-clisten_addresses=127.0.0.1"]),
            Some(("127.0.0.1".into(), "-clisten_addresses=127.0.0.1".into()))
        );
        assert_eq!(
            listen(&[pg, "--listen-addresses=::1"]),
            Some(("::1".into(), "--listen-addresses=::1".into()))
        );
        assert_eq!(
            listen(&[pg, "-h", "10.0.0.5"]),
            Some(("10.0.0.5".into(), "-h 10.0.0.5".into()))
        );
        assert_eq!(listen(&[pg, "-Fi"]), Some(("*".into(), "-Fi".into())));
        // The last one wins, as in the server.
        assert_eq!(
            listen(&[pg, "-i", "-c", "listen_addresses=", "-p", "5433"]),
            Some(("".into(), "-c listen_addresses=".into()))
        );
    }

    #[test]
    fn a_value_is_not_read_as_an_option() {
        let pg = "postgres";
        // `-D -i` is a data folder named "-i"; `-c config_file=/x` sets another setting.
        assert_eq!(listen(&[pg, "-D", "-i"]), None);
        assert_eq!(listen(&[pg, "-c", "config_file=/etc/pg.conf"]), None);
        assert_eq!(listen(&[pg, "-c"]), None);
    }

    #[test]
    fn reads_the_socket_folders_and_the_port_by_their_flags() {
        let argv = [
            "postgres",
            "-k",
            "/tmp/s",
            "-p5433",
            "-c",
            "unix_socket_directories=/run/a",
        ];
        let cmd = ServerCommand::from_argv(1, argv.iter().map(|w| w.to_string()).collect());
        let folders = cmd.given("unix_socket_directories").unwrap();
        assert_eq!(
            (folders.value.as_str(), folders.written.as_str()),
            ("/run/a", "-c unix_socket_directories=/run/a")
        );
        assert_eq!(cmd.given("port").unwrap().written, "-p5433");
        assert_eq!(cmd.given("listen_addresses"), None);
        assert!(cmd.listens_on_tcp());
        let socket_only =
            ServerCommand::from_argv(1, vec!["postgres".into(), "-h".into(), "".into()]);
        assert!(!socket_only.listens_on_tcp());
    }
}
