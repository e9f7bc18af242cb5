//! Pseudo-terminals for programs with `tty: true`: opened by the daemon before the spawn (the
//! child only makes it its controlling terminal, without allocating), the master kept by the
//! output side as the process's stdout stream, its window size set from attached clients.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use nix::{
    fcntl::{FcntlArg, OFlag, fcntl},
    pty::{grantpt, posix_openpt, ptsname_r, unlockpt},
    sys::stat::Mode,
};

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub columns: u16,
}

impl WindowSize {
    /// What a terminal has until a client says otherwise.
    pub const DEFAULT: WindowSize = WindowSize {
        rows: 24,
        columns: 80,
    };
}

/// A new pseudo-terminal: its master (non-blocking) and its other side (blocking, for the
/// child), both close-on-exec and neither the daemon's controlling terminal; the window
/// [`WindowSize::DEFAULT`].
pub fn open() -> io::Result<(OwnedFd, OwnedFd)> {
    // Close-on-exec from the start: a child spawned meanwhile never inherits either side.
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = posix_openpt(flags)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let path = ptsname_r(&master)?;
    let terminal = nix::fcntl::open(path.as_str(), flags, Mode::empty())?;
    let master = OwnedFd::from(master);
    // Only the daemon's side: the child reads and writes as on any terminal.
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    resize(master.as_fd(), WindowSize::DEFAULT)?;
    Ok((master, terminal))
}

/// Sets the window size of the terminal of `master`; the kernel tells its foreground process
/// group with SIGWINCH when the size changed.
pub fn resize(master: BorrowedFd<'_>, size: WindowSize) -> io::Result<()> {
    let winsize = nix::libc::winsize {
        ws_row: size.rows,
        ws_col: size.columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, valid for the whole call.
    let result = unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &winsize) };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_carries_bytes_both_ways_and_its_size() {
        let (master, terminal) = open().unwrap();
        // What the program writes, the master reads (the line discipline adds a CR).
        nix::unistd::write(&terminal, b"hi\n").unwrap();
        let mut buffer = [0u8; 16];
        let mut read = 0;
        while read < 4 {
            match nix::unistd::read(master.as_fd(), &mut buffer[read..]) {
                Ok(count) => read += count,
                Err(nix::errno::Errno::EAGAIN) => std::thread::yield_now(),
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(&buffer[..read], b"hi\r\n");
        resize(
            master.as_fd(),
            WindowSize {
                rows: 7,
                columns: 33,
            },
        )
        .unwrap();
        let mut size: nix::libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
        assert_eq!(
            unsafe { nix::libc::ioctl(terminal.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut size) },
            0
        );
        assert_eq!((size.ws_row, size.ws_col), (7, 33));
        // Once the other side is closed, the master reads EIO: the stream's end.
        drop(terminal);
        assert_eq!(
            nix::unistd::read(master.as_fd(), &mut buffer),
            Err(nix::errno::Errno::EIO)
        );
    }
}
