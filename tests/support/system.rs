//! What the tests need of the machine: whether they run as root, the `nobody` user, a free TCP
//! port, and files written with a given mode (tokens, keys, certificates).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use nix::unistd::{Group, User};

/// Whether the test runs as root; a test that needs it says why (`why`: "to run taskctl as
/// nobody") and returns when not.
pub fn root_or_skip(test: &str, why: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping {test}: it needs root ({why})");
    }
    root
}

/// `nobody` and its primary group, as this machine's databases have them (`nogroup` on
/// Debian, `nobody` elsewhere).
pub fn nobody() -> (User, Group) {
    let user = User::from_name("nobody").unwrap().expect("a user `nobody`");
    let group = Group::from_gid(user.gid).unwrap().expect("nobody's group");
    (user, group)
}

/// `nobody` and its group when the test runs as root, for a test that needs both (`why`, as
/// [`root_or_skip`] says it); `None`, said, when not root.
pub fn nobody_as_root(test: &str, why: &str) -> Option<(User, Group)> {
    root_or_skip(test, why).then(nobody)
}

/// A TCP port of loopback nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to `dir/name` with permission bits `mode`; returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A token file `dir/name` holding `token` and a newline, private to its owner.
pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    write_file(dir, name, &format!("{token}\n"), 0o600)
}
