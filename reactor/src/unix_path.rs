//! A Unix listening socket's file: a socket file left behind by a process that died is removed, one
//! that a live server answers on is not; ours goes when the listener is dropped.
//!
//! Binding a Unix socket creates a file at the path, and `bind` fails with EADDRINUSE while that file
//! exists, even when nobody listens on it any more (a server killed before it could clean up). Whether
//! anyone listens is only known by connecting: ECONNREFUSED means the file is stale.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use mio::net::UnixListener;
use socket2::{Domain, SockAddr, Socket, Type};

/// The socket file of one of our listeners: removed on drop, if it is still the file we created (not
/// one a later server put at the same path).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.identity {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Binds and listens on `path`, after removing a stale socket file there. Refuses, naming the path,
/// when a server answers on it or when the path is not a socket.
pub(crate) fn bind(path: &Path, backlog: i32) -> io::Result<(UnixListener, SocketFile)> {
    clear_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let addr = SockAddr::unix(path).map_err(|e| annotate(e, "bind", path))?;
    socket.bind(&addr).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse { in_use(path) } else { annotate(e, "bind", path) }
    })?;
    // From here on the file is ours: a failed listen removes it.
    let identity = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let file = SocketFile { path: path.to_path_buf(), identity };
    socket.listen(backlog).map_err(|e| annotate(e, "listen on", path))?;
    Ok((UnixListener::from_std(socket.into()), file))
}

/// Removes the socket file at `path` if nobody listens on it.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(annotate(e, "bind", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "cannot bind unix:{}: the path exists and is not a socket; remove it or choose another path",
                path.display()
            ),
        ));
    }
    // Non-blocking, so that a live server with a full backlog answers EAGAIN instead of holding us.
    match mio::net::UnixStream::connect(path) {
        Ok(_) => Err(in_use(path)),
        Err(e) if crate::io_util::would_block(&e) => Err(in_use(path)),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale socket file {} (nobody listens on it)", path.display());
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(annotate(e, "remove the stale socket file", path))
                }
                _ => Ok(()),
            }
        }
        Err(e) => Err(annotate(e, "check whether a server listens on", path)),
    }
}

fn in_use(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("cannot bind unix:{}: address in use (a server is listening on it)", path.display()),
    )
}

fn annotate(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("cannot {what} unix:{}: {error}", path.display()))
}
