//! Process set-up before any thread exists: the allocator's thresholds, descriptors inherited
//! by accident, ignored signals and the open-files limit.

/// Everything the foreground daemon sets up before it starts its runtime (and so any thread):
/// a higher open-files limit, inherited descriptors closed on exec, default signal dispositions.
pub fn before_threads() {
    raise_open_files_limit();
    close_inherited_fds_on_exec();
    restore_default_signal_dispositions();
}

/// glibc raises its mmap threshold to the size of each large block freed, up to 32 MB, and its
/// trim threshold to twice that: after the config parse (a few large buffers) a long-lived
/// daemon would keep every later transient buffer (a big Status reply, a reload) in its heap for
/// good. Fixed thresholds keep large blocks in their own mappings and give freed heap back.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: nix::libc::c_int = 128 * 1024;
        // SAFETY: mallopt only sets allocator parameters; called before any other thread.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, THRESHOLD);
            nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, THRESHOLD);
        }
    }
}

/// Whatever descriptors we inherited beyond 0-2 (a shell's, a test runner's jobserver) must
/// not reach the children: mark them close-on-exec, once, before any thread exists.
fn close_inherited_fds_on_exec() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets flags; no memory is touched.
    let done = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done != 0 {
        // Kernels before 5.11: walk our descriptors instead.
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: setting FD_CLOEXEC on a descriptor number has no memory effects;
                // one that closed meanwhile just fails with EBADF.
                unsafe {
                    nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// Ignored signals survive exec: a daemon started from `nohup` or a shell's background job
/// would hand SIGHUP, SIGINT or SIGQUIT to its children ignored. Reset every ignored signal
/// but SIGPIPE (which std resets in each child) to its default, once, before any thread exists.
fn restore_default_signal_dispositions() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator().filter(|signal| *signal != Signal::SIGPIPE) {
        // SAFETY: installing SIG_DFL cannot break memory safety; we only replace SIG_IGN, so
        // no handler of ours or of a library is removed.
        unsafe {
            if let Ok(old) = sigaction(signal, &default)
                && !matches!(old.handler(), SigHandler::SigIgn)
            {
                let _ = sigaction(signal, &old);
            }
        }
    }
}

/// Every client connection holds a descriptor: a daemon watched by many clients needs more
/// than the usual 1024 files.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
