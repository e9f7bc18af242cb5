//! Where the config file is: an explicit path, else ./taskmaster.yaml, the XDG config
//! directory or /etc; and paths made absolute and cleaned of `.` the same way everywhere.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::ConfigError;

/// The name of the config file looked for by [`find`].
pub const DEFAULT_FILE_NAME: &str = "taskmaster.yaml";

/// The config file to use: `explicit` if given (it must exist), else ./taskmaster.yaml, else
/// $XDG_CONFIG_HOME/taskmaster/taskmaster.yaml (XDG_CONFIG_HOME defaulting to ~/.config), else
/// /etc/taskmaster/taskmaster.yaml. Error lists the places tried. The path returned is absolute.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    // Without a current directory the relative candidates stay relative; nothing better exists.
    let cwd = std::env::current_dir().unwrap_or_default();
    let xdg = std::env::var_os("XDG_CONFIG_HOME");
    let home = std::env::var_os("HOME");
    find_in(
        explicit,
        &SearchPlaces {
            cwd: &cwd,
            xdg_config_home: xdg.as_deref(),
            home: home.as_deref(),
            system_dir: Path::new("/etc"),
        },
    )
}

/// What [`find`] reads from the process, passed in so tests need not change the process.
struct SearchPlaces<'a> {
    /// The current directory.
    cwd: &'a Path,
    /// `$XDG_CONFIG_HOME`.
    xdg_config_home: Option<&'a OsStr>,
    /// `$HOME`.
    home: Option<&'a OsStr>,
    /// `/etc` outside tests.
    system_dir: &'a Path,
}

impl SearchPlaces<'_> {
    /// The places searched, in order.
    fn candidates(&self) -> Vec<PathBuf> {
        let mut places = vec![clean(&self.cwd.join(DEFAULT_FILE_NAME))];
        // As the XDG base directory spec says: an empty or relative value is ignored.
        let config_home = match self.xdg_config_home.map(Path::new) {
            Some(dir) if dir.is_absolute() => Some(dir.to_path_buf()),
            _ => self
                .home
                .filter(|home| !home.is_empty())
                .map(|home| Path::new(home).join(".config")),
        };
        if let Some(dir) = config_home {
            places.push(clean(&dir.join("taskmaster").join(DEFAULT_FILE_NAME)));
        }
        places.push(self.system_dir.join("taskmaster").join(DEFAULT_FILE_NAME));
        places
    }
}

fn find_in(explicit: Option<&Path>, places: &SearchPlaces<'_>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        let path = clean(&places.cwd.join(path));
        return match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Err(ConfigError::Read {
                path,
                source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
            }),
            Ok(_) => Ok(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Err(ConfigError::NotFound { tried: vec![path] })
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        };
    }
    let tried = places.candidates();
    match tried.iter().find(|path| path.is_file()) {
        Some(path) => Ok(path.clone()),
        None => Err(ConfigError::NotFound { tried }),
    }
}

/// `path` made absolute against the current directory, without `.` components.
pub(super) fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        return Ok(clean(path));
    }
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(clean(&cwd.join(path)))
}

/// `path` without `.` components. `..` stays: removing it is wrong across symbolic links.
pub(super) fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary layout for `find`: a cwd, an XDG dir, a home and a system dir.
    struct Layout {
        _root: tempfile::TempDir,
        cwd: PathBuf,
        xdg: PathBuf,
        home: PathBuf,
        system: PathBuf,
    }

    impl Layout {
        fn new() -> Layout {
            let root = tempfile::tempdir().unwrap();
            let dir = |name: &str| {
                let path = root.path().join(name);
                std::fs::create_dir_all(&path).unwrap();
                path
            };
            let (cwd, xdg, home, system) = (dir("cwd"), dir("xdg"), dir("home"), dir("etc"));
            Layout {
                _root: root,
                cwd,
                xdg,
                home,
                system,
            }
        }

        fn places<'a>(&'a self, xdg: Option<&'a OsStr>) -> SearchPlaces<'a> {
            SearchPlaces {
                cwd: &self.cwd,
                xdg_config_home: xdg,
                home: Some(self.home.as_os_str()),
                system_dir: &self.system,
            }
        }
    }

    fn put(path: &Path) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "programs: {}\n").unwrap();
        path.to_path_buf()
    }

    #[test]
    fn find_searches_in_order() {
        let l = Layout::new();
        let xdg = Some(l.xdg.as_os_str());
        let in_cwd = l.cwd.join(DEFAULT_FILE_NAME);
        let in_xdg = l.xdg.join("taskmaster").join(DEFAULT_FILE_NAME);
        let in_home = l.home.join(".config/taskmaster").join(DEFAULT_FILE_NAME);
        let in_system = l.system.join("taskmaster").join(DEFAULT_FILE_NAME);

        match find_in(None, &l.places(xdg)) {
            Err(ConfigError::NotFound { tried }) => {
                assert_eq!(tried, [in_cwd.clone(), in_xdg.clone(), in_system.clone()]);
            }
            other => panic!("{other:?}"),
        }
        match find_in(None, &l.places(None)) {
            Err(ConfigError::NotFound { tried }) => {
                assert_eq!(tried, [in_cwd.clone(), in_home.clone(), in_system.clone()]);
            }
            other => panic!("{other:?}"),
        }
        put(&in_system);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_system);
        put(&in_home);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_system);
        assert_eq!(find_in(None, &l.places(None)).unwrap(), in_home);
        // An empty or relative XDG_CONFIG_HOME is ignored.
        assert_eq!(
            find_in(None, &l.places(Some(OsStr::new("")))).unwrap(),
            in_home
        );
        assert_eq!(
            find_in(None, &l.places(Some(OsStr::new("rel")))).unwrap(),
            in_home
        );
        put(&in_xdg);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_xdg);
        // A directory named like the file is not a config file.
        std::fs::create_dir(&in_cwd).unwrap();
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_xdg);
        std::fs::remove_dir(&in_cwd).unwrap();
        put(&in_cwd);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_cwd);
    }

    #[test]
    fn find_takes_an_explicit_path_that_must_exist() {
        let l = Layout::new();
        let places = l.places(None);
        put(&l.cwd.join(DEFAULT_FILE_NAME));
        let other = put(&l.cwd.join("sub/other.yaml"));
        assert_eq!(
            find_in(Some(Path::new("sub/./other.yaml")), &places).unwrap(),
            other
        );
        assert_eq!(find_in(Some(&other), &places).unwrap(), other);
        match find_in(Some(Path::new("missing.yaml")), &places) {
            Err(ConfigError::NotFound { tried }) => assert_eq!(tried, [l.cwd.join("missing.yaml")]),
            other => panic!("{other:?}"),
        }
        let err = find_in(Some(Path::new("sub")), &places).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }
}
