//! Who holds a TCP port on this machine: the process listening on it, and, for a PostgreSQL
//! server, its data folder and which installed cluster that is. Used to never take another
//! server for the project's own: a distribution cluster on the project server's port answers
//! the same probe, and only its process and data folder tell them apart.
//!
//! Linux only, from `/proc`: the listening socket's inode in `/proc/net/tcp{,6}`, the process
//! that has it open in `/proc/<pid>/fd`, and that process's working folder (`postgres` runs in
//! its data folder). Another user's process is invisible to an ordinary user; then the holder
//! is `Unknown` and said to be so. Elsewhere every answer is `Unknown`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::clusters::Installed;

/// The listening process on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nothing listens on it (on any address).
    Nobody,
    /// A process aksara could see.
    Process {
        pid: u32,
        /// `postgres`, `docker-proxy`, ...
        command: String,
        /// For postgres: its data folder (its working folder).
        data_dir: Option<PathBuf>,
        /// The installed cluster with that data folder, described (`PostgreSQL cluster 15/main
        /// (postgresql-common, port 5432, running)`).
        cluster: Option<String>,
    },
    /// Something listens, but its process is not visible to this user (or not on Linux).
    Unknown,
}

impl Holder {
    pub fn pid(&self) -> Option<u32> {
        match self {
            Holder::Process { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Nobody => f.write_str("nothing"),
            Holder::Process {
                pid,
                command,
                data_dir,
                cluster,
            } => {
                match cluster {
                    Some(c) => write!(f, "{c}, pid {pid}")?,
                    None => write!(f, "{command} (pid {pid})")?,
                }
                if let Some(d) = data_dir {
                    write!(f, ", data in {}", d.display())?;
                }
                Ok(())
            }
            Holder::Unknown => {
                f.write_str("a process this user cannot see (another user's, or the system's)")
            }
        }
    }
}

/// The sockets listening on `port` (state `0A`) in `/proc/net/tcp` text: each one's owner
/// (uid) and inode.
fn listeners(proc_net_tcp: &str, port: u16) -> Vec<(u32, u64)> {
    let wanted = format!("{port:04X}");
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            if !local_port.eq_ignore_ascii_case(&wanted) || *f.get(3)? != "0A" {
                return None;
            }
            Some((f.get(7)?.parse().ok()?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// The sockets listening on `port` in `/proc/net/tcp` and `/proc/net/tcp6`, each one's owner
/// and inode; None when neither table can be read (not Linux).
fn listeners_on(port: u16) -> Option<Vec<(u32, u64)>> {
    let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .collect();
    (!tables.is_empty()).then(|| tables.iter().flat_map(|t| listeners(t, port)).collect())
}

/// The OS user (uid) every TCP listener on `port` belongs to, when there is one and all are
/// that user's: any user may read it (unlike the process behind it). None on no listener,
/// listeners of several users, or without `/proc`.
pub fn listener_uid(port: u16) -> Option<u32> {
    let uids: Vec<u32> = listeners_on(port)?
        .into_iter()
        .map(|(uid, _)| uid)
        .collect();
    let first = *uids.first()?;
    uids.iter().all(|&u| u == first).then_some(first)
}

/// Who listens on `port`; `clusters` name a postgres by its data folder.
pub fn holder_of(port: u16, clusters: &[Installed]) -> Holder {
    let Some(listening) = listeners_on(port) else {
        return if crate::localserver::port_is_free(port) {
            Holder::Nobody
        } else {
            Holder::Unknown
        };
    };
    let inodes: Vec<u64> = listening.into_iter().map(|(_, inode)| inode).collect();
    if inodes.is_empty() {
        return Holder::Nobody;
    }
    match pid_with_socket(&inodes) {
        Some(pid) => describe(pid, clusters),
        None => Holder::Unknown,
    }
}

/// Who listens on `port`, naming a postgres's cluster (which reads the installed clusters'
/// files, `pg_lsclusters` included) only when the holder is not `own`: the common case, the
/// project's own server or nobody, costs no more than reading `/proc`.
pub fn holder_unless(port: u16, own: Option<u32>) -> Holder {
    match holder_of(port, &[]) {
        Holder::Process { pid, .. } if Some(pid) != own => {
            describe(pid, &crate::clusters::discover())
        }
        other => other,
    }
}

/// The process with one of these socket inodes open, when this user may look at its fds.
fn pid_with_socket(inodes: &[u64]) -> Option<u32> {
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path())
                && targets.iter().any(|t| link.as_os_str() == t.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// A process by its pid: its command, and for postgres its data folder and cluster.
pub fn describe(pid: u32, clusters: &[Installed]) -> Holder {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let command = fs::read_to_string(proc_dir.join("comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "a process".to_string());
    let data_dir = (command == "postgres")
        .then(|| fs::read_link(proc_dir.join("cwd")).ok())
        .flatten();
    let cluster = data_dir.as_deref().and_then(|d| {
        clusters
            .iter()
            .find(|c| same_path(&c.data_dir, d))
            .map(Installed::describe)
    });
    Holder::Process {
        pid,
        command,
        data_dir,
        cluster,
    }
}

/// The working folder of a live process (postgres runs in its data folder), when visible.
pub fn process_cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The executable of a live process, when visible.
pub fn process_exe(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

pub fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 31849 1 0 100 0 0 10 0\n\
           1: 0100007F:1538 0100007F:C000 01 00000000:00000000 00:00000000 00000000   101        0 31850 1 0 100 0 0 10 0\n\
           2: 00000000:1539 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n";
        assert_eq!(listeners(text, 5432), vec![(101, 31849)]);
        assert_eq!(listeners(text, 5433), vec![(0, 4242)]);
        assert!(listeners(text, 5434).is_empty());
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Another test's child, forked but not yet exec'd, holds a copy of every descriptor
        // for a moment (close-on-exec closes them only at the exec): then that child is a
        // holder too, or, once the listener is dropped, the port has a listener no process
        // shows. Ask again for a moment, bounded, until only this process is left.
        let settled = |wanted: &dyn Fn(&Holder) -> bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut holder = holder_of(port, &[]);
            while !wanted(&holder) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
                holder = holder_of(port, &[]);
            }
            holder
        };
        let me = std::process::id();
        let held = settled(&|h| h.pid() == Some(me));
        assert_eq!(held.pid(), Some(me), "{held:?}");
        drop(listener);
        assert_eq!(settled(&|h| *h == Holder::Nobody), Holder::Nobody);
    }
}
