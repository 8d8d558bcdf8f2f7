//! Tests of the `.env` hardening (issue 16): oversized files, FIFOs and devices, SIGKILL in the
//! middle of a write, symlinks out of the project, another program writing without the lock,
//! and the preflight that finds all of it before anything changes.

use super::replace::{FAIL_BEFORE_RENAME, NO_TMPFILE, RACE, RacePoint};
use super::*;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn temporary_files_in(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(".aksara-"))
        .collect()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

// --- point 4: size bound ----------------------------------------------------------------

#[test]
fn a_100_mb_env_is_refused_at_once_by_every_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    // Sparse: 100 MiB of size without 100 MiB of disk.
    File::create(&path)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let started = Instant::now();
    let read = read_entries(&path).unwrap_err();
    let write = write_key(&path, "KEY", "v", OnConflict::Replace).unwrap_err();
    let checked = preflight(&path, "KEY", Outside::Refuse).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for err in [&read, &write, &checked] {
        assert!(
            matches!(err, EnvFileError::TooLarge { size, limit, .. }
                if *size == 100 * 1024 * 1024 && *limit == MAX_ENV_FILE_BYTES),
            "{err:?}"
        );
    }
    assert_eq!(
        read.to_string(),
        format!(
            "`{}` is 100 MiB, more than the 1 MiB aksara reads from a .env",
            path.display()
        )
    );
    assert!(read.hint().unwrap().contains("--env-file"));
    assert_eq!(names_in(dir.path()), [".env"]);
    // One byte under the bound is read.
    let small = dir.path().join("small.env");
    let mut bytes = vec![b'#'; MAX_ENV_FILE_BYTES as usize - 4];
    bytes.extend_from_slice(b"\nA=1");
    fs::write(&small, &bytes).unwrap();
    assert_eq!(read_entries(&small).unwrap().len(), 1);
}

// --- point 5: FIFOs and devices ----------------------------------------------------------

#[test]
fn a_fifo_or_a_device_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join(".env");
    mkfifo(&fifo);
    let zero = dir.path().join("zero.env");
    symlink("/dev/zero", &zero).unwrap();
    // No writer ever opens the FIFO: a blocking open would wait forever. The thread reports
    // back, so a regression fails the test instead of hanging the suite.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (f, z) = (fifo.clone(), zero.clone());
    std::thread::spawn(move || {
        let results = vec![
            read_entries(&f).map(drop),
            write_key(&f, "KEY", "v", OnConflict::Replace).map(drop),
            preflight(&f, "KEY", Outside::Refuse).map(drop),
            check_writable(&f),
            read_entries(Path::new("/dev/zero")).map(drop),
            preflight(&z, "KEY", Outside::Allow).map(drop),
        ];
        done_tx.send(results).unwrap();
    });
    let results = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a FIFO or device read must not wait");
    for result in results {
        let err = result.unwrap_err();
        assert!(matches!(err, EnvFileError::NotAFile { .. }), "{err:?}");
        assert!(err.to_string().contains("is not a regular file"), "{err}");
    }
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

// --- point 7: SIGKILL mid-write ----------------------------------------------------------

/// Not a test by itself: the child process of `sigkill_leaves_no_secret_behind`, which runs
/// this binary again with only this test and `AKSARA_TEST_PAUSE` set, then kills it.
#[test]
#[ignore = "run by sigkill_leaves_no_secret_behind as its child process"]
fn sigkill_child_writes_a_secret() {
    let Some(path) = std::env::var_os("AKSARA_TEST_SIGKILL_ENV") else {
        return;
    };
    write_key(
        Path::new(&path),
        "DATABASE_URL",
        "postgresql://app:Canary-S3cret@/app",
        OnConflict::Replace,
    )
    .unwrap();
}

/// Runs the child until it reaches `point`, then SIGKILLs it; returns once it is dead.
fn kill_writer_at(point: &str, env_file: &Path) {
    let marker = env_file.with_file_name("reached");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "envfile::hostile_tests::sigkill_child_writes_a_secret",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(
            crate::envvars::AKSARA_TEST_PAUSE,
            format!("{point}:{}", marker.display()),
        )
        .env("AKSARA_TEST_SIGKILL_ENV", env_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before reaching {point}"
        );
        assert!(Instant::now() < deadline, "the child never reached {point}");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    fs::remove_file(marker).unwrap();
}

#[test]
fn sigkill_leaves_no_secret_behind() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    // A value to replace: the edit goes through a temporary file (adding a line at the end is
    // an in-place append, which has no temporary file at all).
    let original = b"OTHER=1\nDATABASE_URL=postgresql://old@db/app\n";
    fs::write(&env_file, original).unwrap();
    fs::set_permissions(&env_file, Permissions::from_mode(0o644)).unwrap();

    // Killed with the new bytes in the unnamed O_TMPFILE: nothing is left at all.
    kill_writer_at("envfile-unnamed", &env_file);
    assert_eq!(names_in(dir.path()), [".env"]);
    assert_eq!(fs::read(&env_file).unwrap(), original);

    // Killed in the instant the file has a name: it is 0600 although .env is 0644, and the
    // next write (under the folder lock) removes it.
    kill_writer_at("envfile-named", &env_file);
    let left = temporary_files_in(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(mode_of(&dir.path().join(&left[0])), 0o600);
    assert_eq!(fs::read(&env_file).unwrap(), original);

    let change = write_key(
        &env_file,
        "DATABASE_URL",
        "postgresql://new@db/app",
        OnConflict::Replace,
    );
    assert!(matches!(change.unwrap(), Change::Replaced { .. }));
    assert_eq!(names_in(dir.path()), [".env"]);
    assert_eq!(
        fs::read(&env_file).unwrap(),
        b"OTHER=1\nDATABASE_URL=postgresql://new@db/app\n"
    );
    assert_eq!(mode_of(&env_file), 0o644);
}

#[test]
fn without_o_tmpfile_the_named_temporary_file_is_0600_and_never_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    fs::write(&path, b"KEY=old\n").unwrap();
    fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
    NO_TMPFILE.with(|f| f.set(true));
    // A failure after the temporary file is written removes it.
    FAIL_BEFORE_RENAME.with(|f| f.set(true));
    let failed = write_key(&path, "KEY", "secret", OnConflict::Replace);
    FAIL_BEFORE_RENAME.with(|f| f.set(false));
    assert!(failed.is_err());
    assert_eq!(names_in(dir.path()), [".env"]);
    // The temporary file is 0600 while it exists, whatever the .env's mode.
    let seen_mode = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen = std::rc::Rc::clone(&seen_mode);
    RACE.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move |point, target: &Path| {
            if point == RacePoint::BeforeExchange {
                let folder = target.parent().unwrap();
                let temp = temporary_files_in(folder);
                assert_eq!(temp.len(), 1, "{temp:?}");
                seen.set(Some(mode_of(&folder.join(&temp[0]))));
            }
        }));
    });
    let written = write_key(&path, "KEY", "secret", OnConflict::Replace);
    RACE.with(|hook| hook.borrow_mut().take());
    NO_TMPFILE.with(|f| f.set(false));
    assert!(matches!(written.unwrap(), Change::Replaced { .. }));
    assert_eq!(seen_mode.get(), Some(0o600));
    assert_eq!(fs::read(&path).unwrap(), b"KEY=secret\n");
    assert_eq!(mode_of(&path), 0o644);
    assert_eq!(names_in(dir.path()), [".env"]);
}

// --- point 9: symlinks out of the project ------------------------------------------------

#[test]
fn a_symlink_out_of_the_folder_is_refused_unless_allowed() {
    let home = tempfile::tempdir().unwrap();
    let bashrc = home.path().join(".bashrc");
    fs::write(&bashrc, b"export PATH=$PATH:~/bin\n").unwrap();
    fs::set_permissions(&bashrc, Permissions::from_mode(0o644)).unwrap();
    let project = tempfile::tempdir().unwrap();
    let link = project.path().join(".env");
    symlink(&bashrc, &link).unwrap();

    let err = write_key(
        &link,
        "DATABASE_URL",
        "postgresql://a:pw@h/d",
        OnConflict::Fail,
    )
    .unwrap_err();
    let target = fs::canonicalize(&bashrc).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot write `{}`: it is a symbolic link to `{}`, outside the folder it is in",
            link.display(),
            target.display()
        )
    );
    assert!(err.hint().unwrap().contains("--force"));
    assert!(matches!(
        preflight(&link, "DATABASE_URL", Outside::Refuse),
        Err(EnvFileError::SymlinkOutside { .. })
    ));
    assert_eq!(fs::read(&bashrc).unwrap(), b"export PATH=$PATH:~/bin\n");

    // Relative links that leave the folder, and come back, are judged by where they end.
    let back = project.path().join("back.env");
    let out_and_in = format!(
        "../{}/inside.env",
        project.path().file_name().unwrap().to_string_lossy()
    );
    symlink(&out_and_in, &back).unwrap();
    write_key(&back, "KEY", "v", OnConflict::Fail).unwrap();
    assert_eq!(
        fs::read(project.path().join("inside.env")).unwrap(),
        b"KEY=v\n"
    );

    // Forced: written through, the file keeps its mode.
    let options = WriteOptions {
        outside: Outside::Allow,
        ..WriteOptions::default()
    };
    write_key_opts(&link, "KEY", "v", &options).unwrap();
    assert_eq!(
        fs::read(&bashrc).unwrap(),
        b"export PATH=$PATH:~/bin\nKEY=v\n"
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

// --- point 10: another program writing without the lock ------------------------------------

/// Another program's write: one `write` of one line with O_APPEND, as `echo K=V >> .env` does.
fn append_line_as_a_shell_would(path: &Path, line: &str) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Runs `write_key` with `foreign` run once, between aksara's check and its swap.
fn write_with_a_write_before_the_swap(
    path: &Path,
    key: &str,
    foreign: impl FnOnce(&Path) + 'static,
) -> Change {
    let mut foreign = Some(foreign);
    RACE.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move |point, target: &Path| {
            if point == RacePoint::BeforeExchange
                && let Some(foreign) = foreign.take()
            {
                foreign(target);
            }
        }));
    });
    let change = write_key(path, key, "v", OnConflict::Replace);
    RACE.with(|hook| hook.borrow_mut().take());
    change.unwrap()
}

#[test]
fn a_write_between_the_check_and_the_swap_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    // Replacing values goes through the swap (adding a line is an in-place append).
    fs::write(&path, b"A=1\nKEY=old\nKEY2=old\n").unwrap();
    // An append to the very file aksara read: it lands in the inode the swap replaces.
    let change = write_with_a_write_before_the_swap(&path, "KEY", |target| {
        append_line_as_a_shell_would(target, "APPENDED=1")
    });
    assert!(matches!(change, Change::Replaced { .. }), "{change:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        b"A=1\nKEY=v\nKEY2=old\nAPPENDED=1\n"
    );

    // An editor's replace by rename: a new inode at the path.
    let change = write_with_a_write_before_the_swap(&path, "KEY2", |target| {
        let mut bytes = fs::read(target).unwrap();
        bytes.extend_from_slice(b"EDITOR=1\n");
        let temp = target.with_file_name("editor.tmp");
        fs::write(&temp, bytes).unwrap();
        fs::rename(temp, target).unwrap();
    });
    assert!(matches!(change, Change::Replaced { .. }), "{change:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        b"A=1\nKEY=v\nKEY2=v\nAPPENDED=1\nEDITOR=1\n"
    );
    assert_eq!(names_in(dir.path()), [".env"]);
}

#[test]
fn a_key_removed_right_after_the_swap_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    fs::write(&path, b"A=1\n").unwrap();
    let mut clobbered = false;
    RACE.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move |point, target: &Path| {
            // A tool that read the file before aksara's swap writes its older copy back.
            if point == RacePoint::AfterExchange && !clobbered {
                clobbered = true;
                fs::write(target, b"A=1\nTOOL=1\n").unwrap();
            }
        }));
    });
    let change = write_key(&path, "KEY", "v", OnConflict::Fail);
    RACE.with(|hook| hook.borrow_mut().take());
    assert_eq!(change.unwrap(), Change::Added);
    assert_eq!(fs::read(&path).unwrap(), b"A=1\nTOOL=1\nKEY=v\n");
}

/// A shell that opened `.env` for `>>` just before the swap and writes a moment after aksara
/// looked at the replaced file: the line lands in the replaced file. aksara waits until nobody
/// holds that file any more (a write lease on Linux), so the line is carried over. Without the
/// wait this lost the line in 2 of 10 runs of the loop test below.
#[test]
fn a_line_written_late_through_a_descriptor_opened_before_the_swap_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    fs::write(&path, b"KEY=old\n").unwrap();
    let late_writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
    let slot = Arc::clone(&late_writer);
    RACE.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move |point, target: &Path| {
            if point == RacePoint::BeforeExchange && slot.lock().unwrap().is_none() {
                let mut file = OpenOptions::new().append(true).open(target).unwrap();
                *slot.lock().unwrap() = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    file.write_all(b"LATE=1\n").unwrap();
                }));
            }
        }));
    });
    let change = write_key(&path, "KEY", "new", OnConflict::Replace);
    RACE.with(|hook| hook.borrow_mut().take());
    late_writer.lock().unwrap().take().unwrap().join().unwrap();
    assert!(matches!(change.unwrap(), Change::Replaced { .. }));
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("LATE=1\n"),
        "the late line was lost: {text:?}"
    );
    assert!(text.contains("KEY=new\n"), "{text:?}");
    assert_eq!(temporary_files_in(dir.path()), Vec::<String>::new());
}

/// A shell whose `>>` had looked the path up before the swap (finding the old file) and whose
/// `open` itself comes a moment after it: nothing has the replaced file open when aksara looks,
/// so only holding the lease for a while catches it. The lookup is an `O_PATH` descriptor,
/// which opens nothing; the late `open` goes through `/proc/self/fd`, as a fresh open of the
/// file found then. Without the hold this lost the line every time.
#[test]
fn a_line_from_an_open_under_way_at_the_swap_is_kept() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    fs::write(&path, b"KEY=old\n").unwrap();
    let late_writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<bool>>>> = Arc::default();
    let slot = Arc::clone(&late_writer);
    RACE.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move |point, target: &Path| {
            if point == RacePoint::BeforeExchange && slot.lock().unwrap().is_none() {
                let looked_up = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH)
                    .open(target)
                    .unwrap();
                *slot.lock().unwrap() = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(10));
                    let through = format!("/proc/self/fd/{}", looked_up.as_raw_fd());
                    let mut file = OpenOptions::new().append(true).open(through).unwrap();
                    file.write_all(b"LATE=1\n").unwrap();
                    true
                }));
            }
        }));
    });
    let change = write_key(&path, "KEY", "new", OnConflict::Replace);
    RACE.with(|hook| hook.borrow_mut().take());
    assert!(late_writer.lock().unwrap().take().unwrap().join().unwrap());
    assert!(matches!(change.unwrap(), Change::Replaced { .. }));
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("LATE=1\n"),
        "the late line was lost: {text:?}"
    );
    assert!(text.contains("KEY=new\n"), "{text:?}");
    assert_eq!(temporary_files_in(dir.path()), Vec::<String>::new());
}

#[test]
fn a_foreign_writer_loop_and_parallel_upserts_lose_no_key() {
    foreign_writer_rounds(OnConflict::Fail);
}

/// The same with every key already there with another value: each upsert then goes through
/// the swap, the path where a foreign write can land in the replaced file.
#[test]
fn a_foreign_writer_loop_and_parallel_replacements_lose_no_key() {
    foreign_writer_rounds(OnConflict::Replace);
}

/// 5 rounds: a foreign writer appending without the lock while 8 threads each set a key.
fn foreign_writer_rounds(on_conflict: OnConflict) {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join(".env"));
        let seeded: String = match on_conflict {
            OnConflict::Fail => String::new(),
            _ => (0..8).map(|t| format!("AKSARA_{t}=old\n")).collect(),
        };
        fs::write(&*path, format!("# shared\n{seeded}")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let foreign = {
            let (path, stop) = (Arc::clone(&path), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut written = 0;
                while !stop.load(Ordering::Relaxed) {
                    append_line_as_a_shell_would(&path, &format!("FOREIGN_{written}=x"));
                    written += 1;
                    // The pace of the tool in the reproduction (~6,000 writes in 5
                    // rounds of setups): a workload, not a bound anything is measured against.
                    std::thread::sleep(Duration::from_millis(2));
                }
                written
            })
        };
        let start = Arc::new(Barrier::new(8));
        let setups: Vec<_> = (0..8)
            .map(|t| {
                let (path, start) = (Arc::clone(&path), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    write_key(&path, &format!("AKSARA_{t}"), "v", on_conflict).unwrap()
                })
            })
            .collect();
        for setup in setups {
            let change = setup.join().unwrap();
            match on_conflict {
                OnConflict::Fail => assert_eq!(change, Change::Added),
                _ => assert!(matches!(change, Change::Replaced { .. }), "{change:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let written = foreign.join().unwrap();
        let entries = read_entries(&path).unwrap();
        let has = |key: &str| entries.iter().any(|e| e.key == key && e.value != "old");
        let lost_foreign: Vec<usize> = (0..written)
            .filter(|i| !has(&format!("FOREIGN_{i}")))
            .collect();
        let lost_ours: Vec<usize> = (0..8).filter(|t| !has(&format!("AKSARA_{t}"))).collect();
        assert!(
            lost_foreign.is_empty() && lost_ours.is_empty(),
            "round {round}: lost foreign {lost_foreign:?} of {written}, lost aksara {lost_ours:?}"
        );
        assert!(written > 0);
        assert_eq!(temporary_files_in(dir.path()), Vec::<String>::new());
    }
}

// --- point 11: every problem found before anything changes -----------------------------

#[test]
fn preflight_finds_each_problem_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");

    // Missing: fine, nothing to report.
    let found = preflight(&path, "DATABASE_URL", Outside::Refuse).unwrap();
    assert!(!found.exists && found.assignments.is_empty());

    // An unterminated quote on line 1 is named as line 1.
    fs::write(&path, b"DATABASE_URL=\"postgresql://a@h/d\nOTHER=1\n").unwrap();
    let err = preflight(&path, "DATABASE_URL", Outside::Refuse).unwrap_err();
    assert!(
        matches!(err, EnvFileError::UnclosedQuote { line: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");

    // The key's current assignments, with their lines.
    fs::write(&path, b"A=1\nDATABASE_URL=one\n# c\nDATABASE_URL=two\n").unwrap();
    let found = preflight(&path, "DATABASE_URL", Outside::Refuse).unwrap();
    let lines: Vec<(usize, &str)> = found
        .assignments
        .iter()
        .map(|e| (e.line, e.value.as_str()))
        .collect();
    assert_eq!(lines, [(2, "one"), (4, "two")]);
    assert!(found.exists);
    assert_eq!(found.target, fs::canonicalize(&path).unwrap());

    assert!(matches!(
        preflight(&path, "1BAD", Outside::Refuse),
        Err(EnvFileError::InvalidKey { .. })
    ));
    assert!(matches!(
        preflight(&dir.path().join("missing/.env"), "K", Outside::Refuse),
        Err(EnvFileError::ParentMissing { .. })
    ));
    assert!(matches!(
        preflight(dir.path(), "K", Outside::Refuse),
        Err(EnvFileError::IsADirectory { .. })
    ));
    assert_eq!(names_in(dir.path()), [".env"]);
    assert_eq!(
        fs::read(&path).unwrap(),
        b"A=1\nDATABASE_URL=one\n# c\nDATABASE_URL=two\n"
    );
}
