//! Pseudo-terminals for TTY sessions: open a master/slave pair and drive the master from tokio.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// The controlling side of a PTY, readable and writable from async code through `&self`.
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

/// A freshly opened PTY pair; the slave becomes the child's stdin/stdout/stderr.
pub struct Pty {
    pub master: PtyMaster,
    pub slave: OwnedFd,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Pty {
    /// Opens a PTY with window `cols` x `rows`. Both fds are close-on-exec from the start so a
    /// concurrent spawn of another pod's shell can never inherit them (which would keep the
    /// terminal open after this shell exits).
    pub fn open(cols: u16, rows: u16) -> io::Result<Pty> {
        // SAFETY: plain syscalls on fds we own; results are checked.
        unsafe {
            let master = cvt(libc::posix_openpt(
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            let master = OwnedFd::from_raw_fd(master);
            cvt(libc::grantpt(master.as_raw_fd()))?;
            cvt(libc::unlockpt(master.as_raw_fd()))?;
            let slave = cvt(libc::ioctl(
                master.as_raw_fd(),
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            let slave = OwnedFd::from_raw_fd(slave);
            let flags = cvt(libc::fcntl(master.as_raw_fd(), libc::F_GETFL))?;
            cvt(libc::fcntl(
                master.as_raw_fd(),
                libc::F_SETFL,
                flags | libc::O_NONBLOCK,
            ))?;
            // The OwnedFd is moved into the AsyncFd and never replaced, so the registered fd
            // stays the same open file for the AsyncFd's whole life.
            let fd = AsyncFd::register(master).map_err(io::Error::from)?;
            let master = PtyMaster { fd };
            master.resize(cols, rows)?;
            Ok(Pty { master, slave })
        }
    }
}

impl PtyMaster {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }

    /// Sets the window size; the kernel sends SIGWINCH to the foreground process group.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let ws = libc::winsize {
            ws_row: rows.max(1),
            ws_col: cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
        cvt(unsafe { libc::ioctl(self.raw_fd(), libc::TIOCSWINSZ, &ws) })?;
        Ok(())
    }

    /// Reads terminal output. Returns 0 once every slave fd is closed (Linux reports EIO then).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|inner| {
                // SAFETY: buf is valid for buf.len() bytes.
                let n = unsafe {
                    libc::read(
                        inner.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` to the terminal's input.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            let res = guard.try_io(|inner| {
                // SAFETY: data is valid for data.len() bytes.
                let n = unsafe {
                    libc::write(
                        inner.get_ref().as_raw_fd(),
                        data.as_ptr().cast(),
                        data.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
