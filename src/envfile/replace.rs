//! Replacing a file that holds secrets so that nothing is lost and nothing leaks: not to a
//! crash (the original is never truncated), not to SIGKILL (no named temporary file outlives
//! the process, or the next run sweeps it), and not to another program rewriting the file
//! without aksara's lock (optimistic concurrency: the version read is confirmed before and after
//! the swap, and the edit re-applied when it changed). An edit that only adds lines at the end
//! is appended in place instead, as `>>` would: no inode is swapped away under another writer.
//!
//! On Linux the new bytes go to an unnamed `O_TMPFILE` inode, which vanishes with the process;
//! it gets a name (`.aksara-<random>.tmp`, mode 0600) only for the instant of the swap, and
//! every run removes such names under the folder lock. The swap is `renameat2(RENAME_EXCHANGE)`,
//! which leaves the replaced file at the temporary name, so aksara can check that it replaced
//! exactly the version it read, and put it back when another program wrote in between. A
//! program that opened the file just before the swap (a shell's `>>`) writes into the replaced
//! file: aksara waits, bounded, until nobody holds it any more, and carries such lines over.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use super::open::{MAX_ENV_FILE_BYTES, NO_WAIT, Snapshot, read_bounded};
use super::write::{check_inside, locate};
use super::*;

/// How often the read-edit-swap cycle is tried before giving up on a file that another program
/// keeps changing. Each retry follows a change that program made, so this only ends a livelock.
const MAX_ATTEMPTS: u32 = 100;
const TEMP_PREFIX: &str = ".aksara-";
const TEMP_SUFFIX: &str = ".tmp";

#[cfg(test)]
thread_local! {
    /// Makes `replace_file` fail after the temporary file is written, before the rename.
    pub(super) static FAIL_BEFORE_RENAME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Runs another program's write at a chosen moment of the swap (given the target).
    pub(super) static RACE: std::cell::RefCell<Option<RaceHook>> = std::cell::RefCell::new(None);
    /// Acts as a file system without `O_TMPFILE`: temporary files are named from the start.
    pub(super) static NO_TMPFILE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
pub(super) type RaceHook = Box<dyn FnMut(RacePoint, &Path)>;

/// Where a test's [`RACE`] hook runs.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RacePoint {
    /// After the check that the target is the version read, before the exchange.
    BeforeExchange,
    /// After the exchange, before the read-back.
    AfterExchange,
}

#[cfg(test)]
fn race(point: RacePoint, target: &Path) {
    RACE.with(|hook| {
        if let Some(hook) = hook.borrow_mut().as_mut() {
            hook(point, target);
        }
    });
}

/// The test-only pause points: with `AKSARA_TEST_PAUSE=<point>:<marker file>` in the
/// environment, the process creates the marker file when it reaches `<point>` and then waits
/// there forever, so a test can SIGKILL it inside the window. Points: `envfile-unnamed` (the new
/// bytes are written to the unnamed temporary file), `envfile-named` (the temporary file has its
/// name, just before the swap). Compiled into test builds only.
#[cfg(test)]
fn pause_point(point: &str) {
    let Some(setting) = std::env::var_os(crate::envvars::AKSARA_TEST_PAUSE) else {
        return;
    };
    let setting = setting.to_string_lossy();
    let Some((wanted, marker)) = setting.split_once(':') else {
        return;
    };
    if wanted == point {
        let _ = fs::write(marker, point);
        loop {
            std::thread::park();
        }
    }
}

/// Read-modify-write `path` under the folder lock. `edit` gets the current bytes (empty when the
/// file does not exist) and returns the new bytes, or `None` to leave the file untouched; it is
/// called again on the newer bytes whenever another program changed the file meanwhile.
/// `confirm` checks the file as read back after the swap, and a failed check starts over.
pub(crate) fn replace_file<T>(
    path: &Path,
    new_file_mode: u32,
    options: &WriteOptions,
    mut edit: impl FnMut(&[u8]) -> Result<(Option<Vec<u8>>, T), EnvFileError>,
    confirm: impl Fn(&[u8]) -> bool,
) -> Result<T, EnvFileError> {
    let (dir, target) = locate(path)?;
    check_inside(path, &target, options.outside)?;
    let folder = File::open(&dir).map_err(|source| EnvFileError::Io {
        action: IoAction::Read,
        path: dir.clone(),
        source,
    })?;
    lock_folder(&folder, path, options.lock_wait)?;
    sweep_temporary_files(&dir);

    // After a swap that replaced a newer version than the one read, that version is the base
    // of the next attempt, and the file now at the target (ours) is what must still be there.
    let mut carried: Option<(Vec<u8>, Snapshot)> = None;
    // What the first edit that reached the disk did: later attempts only repair other
    // programs' interference, and must not turn an "added" into "unchanged".
    let mut first_swapped: Option<T> = None;
    for _ in 0..MAX_ATTEMPTS {
        let restoring = carried.is_some();
        let read = read_bounded(&target, path)?;
        let (base, current) = match carried.take() {
            Some((newer, ours)) => (rebase(newer, &ours, &read), read),
            None => (read.bytes.clone(), read),
        };
        if current.meta.is_some() {
            refuse_read_only(&target, path)?;
        }
        let (bytes, result) = edit(&base)?;
        // A newer version that already says what we want must still replace our older one.
        let bytes = match bytes {
            Some(bytes) => bytes,
            None if restoring => base.clone(),
            None => return Ok(first_swapped.unwrap_or(result)),
        };
        let appended = (!restoring)
            .then(|| appended_suffix(&current, &bytes))
            .flatten();
        let swapped = match appended {
            Some(suffix) => append_in_place(path, &target, &current, suffix)?,
            None => swap_in(path, &dir, &target, &current, &bytes, new_file_mode)?,
        };
        let replaced = match swapped {
            Swap::Done { replaced } => replaced,
            Swap::Raced => {
                // Still owed: the newer version's content, now on top of the latest change.
                if restoring {
                    carried = Some((base, current));
                }
                continue;
            }
            Swap::Slipped { replaced, ours } => {
                carried = Some((replaced.bytes, *ours));
                first_swapped.get_or_insert(result);
                continue;
            }
        };
        // The new content is in place once the swap returns; failing the command because the
        // folder could not be flushed would make the caller think the value was not written.
        let _ = folder.sync_all();
        #[cfg(test)]
        race(RacePoint::AfterExchange, &target);
        let now = read_bounded(&target, path)?;
        let confirmed = confirm(&now.bytes);
        first_swapped.get_or_insert(result);
        // A write that went to the old file after its check (its writer had opened it before
        // the swap) is carried over like a write that slipped in before the swap.
        let appended =
            replaced.and_then(|(file, seen)| appended_when_quiet(&file, seen, OTHERS_WAIT));
        if let Some(appended) = appended {
            carried = Some(([now.bytes.as_slice(), &appended].concat(), now));
            continue;
        }
        if confirmed {
            return Ok(first_swapped.expect("set above"));
        }
    }
    Err(EnvFileError::Contended {
        path: path.to_path_buf(),
        attempts: MAX_ATTEMPTS,
    })
}

/// The bytes to add when the edit only appends whole lines to an existing file that ends in
/// a line break (the usual "added" case).
fn appended_suffix<'a>(current: &Snapshot, bytes: &'a [u8]) -> Option<&'a [u8]> {
    let suffix = bytes.strip_prefix(current.bytes.as_slice())?;
    let whole_lines = current.bytes.ends_with(b"\n") && !suffix.is_empty();
    (current.meta.is_some() && whole_lines).then_some(suffix)
}

/// Append `suffix` to the file in place with `O_APPEND`, the way a shell's `>>` does, if it is
/// still the version read. Nothing is renamed, so a program that opened the file to append
/// to it (and writes a moment later) still writes into the file that stays: a swap would leave
/// its line in the replaced inode. The original bytes are never touched; a failed write
/// changes nothing (a line this short goes in one `write`).
fn append_in_place(
    path: &Path,
    target: &Path,
    current: &Snapshot,
    suffix: &[u8],
) -> Result<Swap, EnvFileError> {
    let io_err = |source| EnvFileError::Io {
        action: IoAction::Write,
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(NO_WAIT)
        .open(target)
        .map_err(|e| super::open::open_error(e, path, IoAction::Write))?;
    let meta = file.metadata().map_err(io_err)?;
    if current.identity() != Some(super::open::Identity::of(&meta)) {
        return Ok(Swap::Raced);
    }
    #[cfg(test)]
    if FAIL_BEFORE_RENAME.with(|f| f.get()) {
        return Err(io_err(io::Error::other("injected failure")));
    }
    (&file).write_all(suffix).map_err(io_err)?;
    file.sync_data().map_err(io_err)?;
    Ok(Swap::Done { replaced: None })
}

/// The base for the next edit after a swap replaced `newer` (another program's version) with
/// `ours`: `newer`, plus what was appended to ours since (a shell's `>>` writes to whatever
/// file is at the path). Had the file been rewritten otherwise, the rewrite is the base: a
/// program that rewrites without the lock has read our version and kept what it wanted.
fn rebase(newer: Vec<u8>, ours: &Snapshot, now: &Snapshot) -> Vec<u8> {
    if ours.same_as(now) {
        return newer;
    }
    let same_inode =
        matches!((ours.identity(), now.identity()), (Some(a), Some(b)) if a.same_inode(&b));
    match now.bytes.strip_prefix(ours.bytes.as_slice()) {
        Some(appended) if same_inode => [newer.as_slice(), appended].concat(),
        _ => now.bytes.clone(),
    }
}

enum Swap {
    /// Swapped in; `replaced` is the old file (still open) and its length when checked.
    Done { replaced: Option<(File, u64)> },
    /// The file changed since it was read: read it again and re-apply the edit.
    Raced,
    /// The swap replaced a newer version than the one read (another program wrote between the
    /// check and the swap): `replaced` is that version, `ours` what is at the target now.
    Slipped {
        replaced: Box<Snapshot>,
        ours: Box<Snapshot>,
    },
}

/// Write `bytes` to a temporary file and swap it in for `target`, if `target` is still the
/// version `read`.
fn swap_in(
    path: &Path,
    dir: &Path,
    target: &Path,
    read: &Snapshot,
    bytes: &[u8],
    new_file_mode: u32,
) -> Result<Swap, EnvFileError> {
    let io_err = |action, source| EnvFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let not_writable = |e: io::Error| match e.kind() {
        io::ErrorKind::ReadOnlyFilesystem => EnvFileError::ReadOnlyFilesystem {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => EnvFileError::DirNotWritable {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        },
        _ => io_err(IoAction::Write, e),
    };
    let mut temp = TempFile::create(dir).map_err(not_writable)?;
    temp.file
        .write_all(bytes)
        .map_err(|e| io_err(IoAction::Write, e))?;
    if let Some(meta) = &read.meta {
        // Only root can give a file away; anyone else keeps their own ownership, which is
        // also what an editor does, so a failure here is not an error.
        let _ = std::os::unix::fs::fchown(&temp.file, Some(meta.uid()), Some(meta.gid()));
    }
    temp.file
        .sync_all()
        .map_err(|e| io_err(IoAction::Write, e))?;
    #[cfg(test)]
    pause_point("envfile-unnamed");

    #[cfg(test)]
    if FAIL_BEFORE_RENAME.with(|f| f.get()) {
        return Err(io_err(
            IoAction::Write,
            io::Error::other("injected failure"),
        ));
    }

    let name = temp.name(dir).map_err(not_writable)?;
    #[cfg(test)]
    pause_point("envfile-named");
    if !read.same_as(&read_bounded(target, path)?) {
        return Ok(Swap::Raced);
    }
    #[cfg(test)]
    race(RacePoint::BeforeExchange, target);
    let mut replaced_file = None;
    match exchange(&name, target, read.meta.is_some()).map_err(not_writable)? {
        Exchanged::Swapped => {
            // The replaced file is now at `name`: it must be the version read, else another
            // program wrote between the check and the swap, and its version is the new base.
            // It stays open: a program that opened it before the swap may still append to it.
            replaced_file = OpenOptions::new()
                .read(true)
                .custom_flags(NO_WAIT)
                .open(&name)
                .ok();
            let replaced = read_bounded(&name, path)?;
            if !read.same_as(&replaced) {
                if let Some(meta) = &replaced.meta {
                    let mode = Permissions::from_mode(meta.mode() & 0o7777);
                    temp.file
                        .set_permissions(mode)
                        .map_err(|e| io_err(IoAction::Write, e))?;
                }
                let ours = Snapshot {
                    bytes: bytes.to_vec(),
                    meta: Some(
                        temp.file
                            .metadata()
                            .map_err(|e| io_err(IoAction::Read, e))?,
                    ),
                };
                return Ok(Swap::Slipped {
                    replaced: Box::new(replaced),
                    ours: Box::new(ours),
                });
            }
        }
        Exchanged::Renamed => temp.forget_name(),
        Exchanged::TargetAppeared => return Ok(Swap::Raced),
    }
    // Mode last: the temporary file stays 0600 while it has a name; the target's own mode
    // (0644 if its owner chose so) is restored only now that it is the target. A chown clears
    // setuid/setgid bits, so it came first.
    let mode = read
        .meta
        .as_ref()
        .map_or(new_file_mode, |m| m.mode() & 0o7777);
    temp.file
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|e| io_err(IoAction::Write, e))?;
    Ok(Swap::Done {
        replaced: replaced_file.map(|file| (file, read.bytes.len() as u64)),
    })
}

/// How long a write waits for other programs to close the file it replaced (one that opened
/// `.env` to append just before the swap writes a moment later, into the replaced file). Only
/// spent while some program holds that file open for writing.
const OTHERS_WAIT: Duration = Duration::from_secs(1);

/// How long the replaced file is watched after the swap for a writer whose `open` was already
/// under way: its path lookup found the old file before the swap, and the open itself (which
/// is what a lease can see) comes a moment later, later still when the scheduler preempts that
/// program in between. CI lost a shell line in this window (the loop test below, on a loaded
/// 2-core machine) while the lease was only taken and given back; held, such an open breaks it.
const IN_FLIGHT_OPENS: Duration = Duration::from_millis(50);

/// What was appended to the replaced file since its length was `seen`, looked at once nobody
/// else can write to it any more: its name is gone from the target, so only a program that
/// found it before the swap can still open it. Linux tells through a read lease, granted only
/// while no other open file description can write to the file, and broken by any open for
/// writing. The lease is held for [`IN_FLIGHT_OPENS`], so an open that was under way at the swap
/// breaks it and is waited for; then the look happens while the lease is still held. A break
/// means a writer is blocked in its `open`: the lease is given back so it can go on, and the
/// wait starts over until it has closed the file. Readers (`tail -f .env`) do not count. Bounded
/// by `bound`; where leases are refused (another owner without CAP_LEASE, a file system without
/// them) the look happens at once.
#[cfg(target_os = "linux")]
fn appended_when_quiet(replaced: &File, seen: u64, bound: Duration) -> Option<Vec<u8>> {
    // <linux/fcntl.h>, the same on every architecture; the libc crate lacks it for glibc.
    const F_SETSIG: libc::c_int = 10;
    let fd = replaced.as_raw_fd();
    // A lease break is signalled, SIGIO by default, whose default action ends the process:
    // SIGURG is ignored unless a program asks for it, and aksara does not.
    // SAFETY: fcntl on a descriptor borrowed for this call; the arguments are ints.
    if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } != 0 {
        return appended_since(replaced, seen);
    }
    // SAFETY: as above. A lease being broken reports what it is broken to.
    let breaking = || unsafe { libc::fcntl(fd, libc::F_GETLEASE) } != libc::F_RDLCK;
    let deadline = Instant::now() + bound;
    loop {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
            let watched_until = Instant::now() + IN_FLIGHT_OPENS;
            while !breaking() && Instant::now() < watched_until.min(deadline) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let appended = appended_since(replaced, seen);
            let broken = breaking();
            // SAFETY: as above; giving the lease back lets a waiting `open` go on.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
            if !broken || Instant::now() >= deadline {
                return appended;
            }
        } else if io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN)
            || Instant::now() >= deadline
        {
            return appended_since(replaced, seen);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(not(target_os = "linux"))]
fn appended_when_quiet(replaced: &File, seen: u64, _bound: Duration) -> Option<Vec<u8>> {
    appended_since(replaced, seen)
}

/// What was appended to the replaced file after it was checked (`seen` bytes long then).
fn appended_since(replaced: &File, seen: u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = replaced.metadata().ok()?.len();
    if len <= seen || len > MAX_ENV_FILE_BYTES {
        return None;
    }
    let mut file = replaced;
    file.seek(SeekFrom::Start(seen)).ok()?;
    let mut appended = Vec::new();
    file.take(len - seen).read_to_end(&mut appended).ok()?;
    Some(appended)
}

/// The file a write is building: unnamed (`O_TMPFILE`) until [`TempFile::name`], then named
/// `.aksara-<random>.tmp`; the name is removed on drop (after a swap it holds the old file).
struct TempFile {
    file: File,
    name: Option<PathBuf>,
}

impl TempFile {
    fn create(dir: &Path) -> io::Result<TempFile> {
        #[cfg(test)]
        let unnamed_ok = !NO_TMPFILE.with(|f| f.get());
        #[cfg(not(test))]
        let unnamed_ok = true;
        #[cfg(target_os = "linux")]
        match OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
        {
            Ok(file) if unnamed_ok => return Ok(TempFile { file, name: None }),
            Ok(_) => {}
            // File systems without O_TMPFILE (and kernels before 3.11) say so in these ways.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
                ) => {}
            Err(e) => return Err(e),
        }
        loop {
            let name = temporary_name(dir);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&name)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        name: Some(name),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Give the unnamed file a name in `dir` (a rename needs one), or the name it has.
    fn name(&mut self, dir: &Path) -> io::Result<PathBuf> {
        if let Some(name) = &self.name {
            return Ok(name.clone());
        }
        let proc_path = cstring(Path::new(&format!(
            "/proc/self/fd/{}",
            self.file.as_raw_fd()
        )))?;
        loop {
            let name = temporary_name(dir);
            let c_name = cstring(&name)?;
            // Through /proc needs no privilege; AT_EMPTY_PATH (no /proc mounted) needs
            // CAP_DAC_READ_SEARCH.
            // SAFETY: both paths are NUL-terminated C strings that outlive the calls.
            let mut rc = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc_path.as_ptr(),
                    libc::AT_FDCWD,
                    c_name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                // SAFETY: as above; the empty path refers to the open descriptor itself.
                rc = unsafe {
                    libc::linkat(
                        self.file.as_raw_fd(),
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        c_name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
            }
            if rc == 0 {
                self.name = Some(name.clone());
                return Ok(name);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
    }

    /// The name was renamed away: there is nothing left to remove.
    fn forget_name(&mut self) {
        self.name = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = fs::remove_file(name);
        }
    }
}

fn temporary_name(dir: &Path) -> PathBuf {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the operating system's random source is available");
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{TEMP_PREFIX}{hex}{TEMP_SUFFIX}"))
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

enum Exchanged {
    /// `from` and `to` swapped names: the old file is at `from` now.
    Swapped,
    /// `from` replaced `to` by a plain rename (no exchange on this system, or `to` was missing).
    Renamed,
    /// `to` was missing when read, and exists now.
    TargetAppeared,
}

/// `renameat2(RENAME_EXCHANGE)` when `to` exists, `RENAME_NOREPLACE` when it did not; a plain
/// rename where the file system has neither.
fn exchange(from: &Path, to: &Path, to_exists: bool) -> io::Result<Exchanged> {
    #[cfg(target_os = "linux")]
    {
        let flag = if to_exists {
            libc::RENAME_EXCHANGE
        } else {
            libc::RENAME_NOREPLACE
        };
        let (c_from, c_to) = (cstring(from)?, cstring(to)?);
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                flag,
            )
        };
        if rc == 0 {
            return Ok(if to_exists {
                Exchanged::Swapped
            } else {
                Exchanged::Renamed
            });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) if !to_exists => return Ok(Exchanged::TargetAppeared),
            // The target vanished after it was checked: start over.
            Some(libc::ENOENT) if to_exists => return Ok(Exchanged::TargetAppeared),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        }
    }
    fs::rename(from, to)?;
    Ok(Exchanged::Renamed)
}

/// Remove temporary files that a killed run left behind. Only called under the folder lock,
/// which every writer holds for as long as its temporary file has a name.
fn sweep_temporary_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX);
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The rename needs only the folder to be writable; a file its owner made read-only is still
/// refused, as an editor would. Opened without waiting, in case it became a FIFO.
pub(super) fn refuse_read_only(target: &Path, shown: &Path) -> Result<(), EnvFileError> {
    OpenOptions::new()
        .write(true)
        .custom_flags(NO_WAIT)
        .open(target)
        .map(drop)
        .map_err(|e| super::open::open_error(e, shown, IoAction::Write))
}

/// Wait up to `wait` for an exclusive lock on the folder.
///
/// The folder is locked, not the file: the rename that makes the write atomic swaps the file's
/// inode, so a lock on the old file would guard nothing for the next writer, while the folder's
/// inode stays put. A sibling `.env.lock` would work too, but it is one more file to leave in
/// the user's project (and to gitignore), and deleting it while held breaks the exclusion.
/// The lock is `flock` on Linux, so it also excludes other threads of this process, which open
/// their own descriptions of the folder.
fn lock_folder(folder: &File, path: &Path, wait: Duration) -> Result<(), EnvFileError> {
    let start = Instant::now();
    loop {
        match folder.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(EnvFileError::LockTimeout {
                        path: path.to_path_buf(),
                        waited: wait,
                    });
                }
                std::thread::sleep(LOCK_POLL.min(wait - waited));
            }
            // A file system without locks: going on unlocked beats refusing to work there.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                return Ok(());
            }
            Err(TryLockError::Error(source)) => {
                return Err(EnvFileError::Io {
                    action: IoAction::Lock,
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}
