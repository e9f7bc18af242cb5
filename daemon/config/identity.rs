//! Users and groups as a config names them, looked up in the user and group databases (each
//! name or number once per load): who a program runs as (`user:` and `group:`, the
//! supplementary groups `initgroups(3)` would give, and the rule that only root may run a
//! program as anyone but itself), and who may control the daemon (`daemon.socket_group`,
//! `daemon.operators`, `daemon.viewers`). Both read a name or number the same way
//! ([`super::values::account`]) and look it up here, once.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, getgrouplist};

use super::schema::{Identity, Principal};

/// Who loads the config: the effective uid and gid of the daemon, which decide what identities
/// it may give its programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// Effective uid; 0 is root, who alone may change who a process is.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
}

impl Credentials {
    /// The current process's.
    pub fn current() -> Credentials {
        Credentials {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        }
    }
}

/// A user or group as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Account {
    /// A name; one made of digits only that no entry has is taken as a number.
    Name(String),
    /// A uid or gid, below `u32::MAX` (which `setuid`, `chown` and friends read as "none").
    Id(u32),
}

/// Why an account was not found.
#[derive(Debug, Clone)]
enum Missing {
    /// No entry has this name (nor, for digits, this number).
    Name(String),
    /// No entry has this number.
    Id(u32),
    /// The database could not be read.
    Unreadable(String),
}

impl Missing {
    /// What is said of it, for a user or a group (`kind`).
    fn message(&self, kind: Key) -> String {
        let (what, id, database) = match kind {
            Key::User => ("user", "uid", "user database"),
            Key::Group => ("group", "gid", "group database"),
        };
        match self {
            Missing::Name(name) => format!("no {what} named {name:?} in the {database}"),
            Missing::Id(number) => format!("no {what} with {id} {number} in the {database}"),
            Missing::Unreadable(reason) => format!("cannot read the {database}: {reason}"),
        }
    }
}

/// A user's entry.
#[derive(Debug, Clone)]
pub(super) struct UserEntry {
    /// As the database spells it (for `USER`, and to look up its groups).
    name: String,
    uid: u32,
    /// The primary group.
    gid: u32,
    /// The home directory (for `HOME`).
    home: PathBuf,
}

/// A group's entry.
#[derive(Debug, Clone)]
pub(super) struct GroupEntry {
    /// As the database spells it (for messages).
    name: String,
    gid: u32,
}

/// Which key a problem of an identity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    User,
    Group,
}

/// The user and group databases as one load sees them: each account is looked up once (a
/// config of 5000 programs as `nobody` reads `/etc/group` once, not 5000 times).
pub(super) struct Accounts {
    /// Who loads the config.
    daemon: Credentials,
    /// Each user looked up, or why it was not found.
    users: HashMap<Account, Result<UserEntry, Missing>>,
    /// Each group looked up, or why it was not found.
    groups: HashMap<Account, Result<GroupEntry, Missing>>,
    /// Supplementary groups by user name and group.
    lists: HashMap<(String, u32), Result<Vec<u32>, String>>,
}

impl Accounts {
    pub(super) fn new(daemon: Credentials) -> Accounts {
        Accounts {
            daemon,
            users: HashMap::new(),
            groups: HashMap::new(),
            lists: HashMap::new(),
        }
    }

    /// The entry of the user `account`, looked up once.
    fn find_user(&mut self, account: &Account) -> Result<UserEntry, Missing> {
        once(&mut self.users, account, look_up_user)
    }

    /// The entry of the group `account`, looked up once.
    fn find_group(&mut self, account: &Account) -> Result<GroupEntry, Missing> {
        once(&mut self.groups, account, look_up_group)
    }

    /// The entry of the user `account` (a program's `user:`), or why there is none: a program's
    /// user needs an entry, for its groups and HOME.
    pub(super) fn user(&mut self, account: &Account) -> Result<UserEntry, String> {
        self.find_user(account).map_err(|missing| {
            let message = missing.message(Key::User);
            match missing {
                Missing::Id(_) => {
                    format!("{message} (a program's user needs an entry, for its groups and HOME)")
                }
                _ => message,
            }
        })
    }

    /// The entry of the group `account` (a program's `group:`), or why there is none.
    pub(super) fn group(&mut self, account: &Account) -> Result<GroupEntry, String> {
        (self.find_group(account)).map_err(|missing| missing.message(Key::Group))
    }

    /// The user or group (`kind`) `account` as a principal (the socket's group, an operator, a
    /// viewer): named as written; a number that no entry has is allowed (as chown allows it),
    /// a name that none has is not.
    pub(super) fn principal(&mut self, kind: Key, account: &Account) -> Result<Principal, String> {
        let found = match kind {
            Key::User => self.find_user(account).map(|user| user.uid),
            Key::Group => self.find_group(account).map(|group| group.gid),
        };
        let id = match found {
            Ok(id) => id,
            Err(Missing::Id(id)) => id,
            Err(missing) => return Err(missing.message(kind)),
        };
        let name = match account {
            Account::Name(name) => name.clone(),
            Account::Id(id) => id.to_string(),
        };
        Ok(Principal { id, name })
    }

    /// The identity of a program with `user` and `group` (each `None` when not set; not both),
    /// or the key at fault and why it cannot be given. Without `user:`, the user is the
    /// daemon's own; without `group:`, the group is the user's primary group.
    pub(super) fn identity(
        &mut self,
        user: Option<&UserEntry>,
        group: Option<&GroupEntry>,
    ) -> Result<Identity, (Key, String)> {
        let daemon = self.daemon;
        let user = match user {
            Some(user) => user.clone(),
            None => self.user(&Account::Id(daemon.uid)).map_err(|reason| {
                let message = format!("without `user:` the daemon's own user is meant: {reason}");
                (Key::Group, message)
            })?,
        };
        let (gid, group_name) = match group {
            Some(group) => (group.gid, group.name.clone()),
            None => {
                let name = (self.group(&Account::Id(user.gid)).ok())
                    .map_or_else(|| user.gid.to_string(), |group| group.name);
                (user.gid, name)
            }
        };
        let groups = if daemon.uid == 0 {
            Some(self.supplementary(&user.name, gid).map_err(|reason| {
                let message = format!("the groups of user {}: {reason}", user.name);
                (Key::User, message)
            })?)
        } else {
            only_root_may_change(daemon, &user, gid, &group_name, group.is_some())?;
            None
        };
        Ok(Identity {
            user: user.name,
            uid: user.uid,
            group: group_name,
            gid,
            groups,
            home: user.home,
        })
    }

    /// The supplementary groups of user `name` with group `gid`, as `initgroups(3)` sets them.
    fn supplementary(&mut self, name: &str, gid: u32) -> Result<Vec<u32>, String> {
        let key = (name.to_string(), gid);
        if let Some(known) = self.lists.get(&key) {
            return known.clone();
        }
        let found = CString::new(name)
            .map_err(|_| "the name holds a NUL character".to_string())
            .and_then(|name| {
                getgrouplist(&name, Gid::from_raw(gid)).map_err(|errno| errno.desc().to_string())
            })
            .map(|groups| {
                let mut groups: Vec<u32> = groups.iter().map(|group| group.as_raw()).collect();
                groups.sort_unstable();
                groups.dedup();
                groups
            });
        self.lists.insert(key, found.clone());
        found
    }
}

/// A daemon that is not root can change neither its uid nor its gid: it may only "run as"
/// what it already is.
fn only_root_may_change(
    daemon: Credentials,
    user: &UserEntry,
    gid: u32,
    group: &str,
    group_set: bool,
) -> Result<(), (Key, String)> {
    let not_root = format!(
        "the daemon is not root (it runs as uid {}, gid {})",
        daemon.uid, daemon.gid
    );
    if user.uid != daemon.uid {
        let message = format!(
            "{not_root}: it can run programs only as itself, not as user {} (uid {}); start it \
             as root, or remove `user:`",
            user.name, user.uid
        );
        return Err((Key::User, message));
    }
    if gid != daemon.gid {
        let (key, what) = if group_set {
            (Key::Group, "")
        } else {
            (Key::User, "the primary group of this user, ")
        };
        let message = format!(
            "{not_root}: it can run programs only with its own group, not {what}group {group} \
             (gid {gid}); start it as root, or set `group: {}`",
            daemon.gid
        );
        return Err((key, message));
    }
    Ok(())
}

/// What `look_up` says of `account`, asked once: `known` keeps it.
fn once<T: Clone>(
    known: &mut HashMap<Account, Result<T, Missing>>,
    account: &Account,
    look_up: fn(&Account) -> Result<T, Missing>,
) -> Result<T, Missing> {
    if let Some(found) = known.get(account) {
        return found.clone();
    }
    let found = look_up(account);
    known.insert(account.clone(), found.clone());
    found
}

/// A name made of digits that no entry has, as the number it spells (below `u32::MAX`).
fn as_number(name: &str) -> Option<Account> {
    let number: u32 = name.parse().ok()?;
    (number != u32::MAX).then_some(Account::Id(number))
}

/// Looks `account` up with `by_id` or `by_name` (a name of digits that no entry has, as the
/// number it spells).
fn look_up<T>(
    account: &Account,
    by_id: fn(u32) -> nix::Result<Option<T>>,
    by_name: fn(&str) -> nix::Result<Option<T>>,
) -> Result<T, Missing> {
    let unreadable = |errno: nix::errno::Errno| Missing::Unreadable(errno.desc().to_string());
    let found = match account {
        Account::Id(id) => by_id(*id).map_err(unreadable)?,
        Account::Name(name) => match by_name(name).map_err(unreadable)? {
            None => match as_number(name) {
                Some(number) => return look_up(&number, by_id, by_name),
                None => None,
            },
            found => found,
        },
    };
    found.ok_or_else(|| match account {
        Account::Name(name) => Missing::Name(name.clone()),
        Account::Id(id) => Missing::Id(*id),
    })
}

fn look_up_user(account: &Account) -> Result<UserEntry, Missing> {
    let user = look_up(
        account,
        |uid| User::from_uid(Uid::from_raw(uid)),
        User::from_name,
    )?;
    Ok(UserEntry {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
    })
}

fn look_up_group(account: &Account) -> Result<GroupEntry, Missing> {
    let group = look_up(
        account,
        |gid| Group::from_gid(Gid::from_raw(gid)),
        Group::from_name,
    )?;
    Ok(GroupEntry {
        name: group.name,
        gid: group.gid.as_raw(),
    })
}

#[cfg(test)]
mod tests {
    use nix::unistd::{Gid, Group, User};

    use super::Credentials;
    use crate::config::testing::{WEB, issues, issues_for, ok, web_as_root as web};

    /// `nobody` and its group, as this machine's databases have them (`nogroup` on Debian,
    /// `nobody` elsewhere).
    fn nobody() -> (User, Group) {
        let user = User::from_name("nobody").unwrap().expect("a user `nobody`");
        let group = Group::from_gid(user.gid).unwrap().expect("nobody's group");
        (user, group)
    }

    fn text(lines: &[&str]) -> String {
        let lines: String = lines.iter().map(|line| format!("    {line}\n")).collect();
        format!("{WEB}{lines}")
    }

    /// (line, column, key, message) of each problem of `text` for a daemon as `daemon`.
    fn problems(text: &str, daemon: Credentials) -> Vec<(usize, usize, String, String)> {
        (issues_for(text, daemon).into_iter())
            .map(|issue| (issue.line, issue.column, issue.key, issue.message))
            .collect()
    }

    #[test]
    fn a_user_by_name_or_number_gets_its_group_groups_and_home() {
        let (user, group) = nobody();
        let by_name = web("user: nobody").identity.expect("an identity");
        assert_eq!(by_name.user, "nobody");
        assert_eq!(by_name.uid, user.uid.as_raw());
        assert_eq!(
            (by_name.gid, by_name.group.as_str()),
            (group.gid.as_raw(), &*group.name)
        );
        assert_eq!(by_name.home, user.dir);
        // As initgroups(3): the groups that list the user, and its group.
        let mut expected: Vec<u32> =
            nix::unistd::getgrouplist(&std::ffi::CString::new("nobody").unwrap(), user.gid)
                .unwrap()
                .iter()
                .map(|gid| gid.as_raw())
                .collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(by_name.groups.as_ref(), Some(&expected));
        assert!(expected.contains(&group.gid.as_raw()));
        // The same user by uid, written as a number or as digits.
        let uid = user.uid.as_raw();
        assert_eq!(web(&format!("user: {uid}")).identity, Some(by_name.clone()));
        assert_eq!(
            web(&format!("user: \"{uid}\"")).identity,
            Some(by_name.clone())
        );
        assert_eq!(web("user: ~").identity, None);
        assert_eq!(web("numprocs: 1").identity, None);
    }

    #[test]
    fn group_replaces_the_primary_group_and_without_user_means_the_daemons() {
        let root = web("user: nobody\n    group: root").identity.unwrap();
        assert_eq!(
            (root.uid, root.gid, root.group.as_str()),
            (nobody().0.uid.as_raw(), 0, "root")
        );
        assert!(root.groups.as_ref().unwrap().contains(&0), "{root:?}");
        assert_eq!(web("user: nobody\n    group: 0").identity, Some(root));
        // Only a group: the daemon's own user (root here, as in CI) with that group.
        let daemon = Credentials::current();
        let only_group = ok(&text(&[&format!("group: {}", daemon.gid)])).programs["web"]
            .identity
            .clone()
            .unwrap();
        assert_eq!((only_group.uid, only_group.gid), (daemon.uid, daemon.gid));
    }

    #[test]
    fn an_unknown_user_or_group_is_an_error_at_its_key() {
        let found = issues(&text(&[
            "user: no-such-user-here",
            "group: no-such-group-here",
        ]));
        let at: Vec<(usize, usize, &str, &str)> = (found.iter())
            .map(|i| (i.line, i.column, i.key.as_str(), i.message.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (
                    4,
                    11,
                    "programs.web.user",
                    "no user named \"no-such-user-here\" in the user database"
                ),
                (
                    5,
                    12,
                    "programs.web.group",
                    "no group named \"no-such-group-here\" in the group database"
                ),
            ]
        );
        let unused_id = 4_000_000_000u32;
        assert!(User::from_uid(unused_id.into()).unwrap().is_none());
        assert!(Group::from_gid(Gid::from_raw(unused_id)).unwrap().is_none());
        let found = issues(&text(&[&format!("user: {unused_id}")]));
        assert_eq!(found[0].key, "programs.web.user");
        assert!(found[0].message.starts_with(&format!(
            "no user with uid {unused_id} in the user database"
        )));
        let found = issues(&text(&["user: nobody", &format!("group: {unused_id}")]));
        assert_eq!(
            (found[0].key.as_str(), found[0].message.as_str()),
            (
                "programs.web.group",
                &*format!("no group with gid {unused_id} in the group database")
            )
        );
        for (line, message) in [
            ("user: [a]", "expected a user name or number, found a list"),
            ("user: ''", "the user name is empty"),
            ("user: -1", "a user id is from 0 to 4294967294, found -1"),
            (
                "user: 4294967295",
                "a user id is from 0 to 4294967294, found 4294967295",
            ),
            (
                "group: 1.5",
                "expected a group name or number, found number `1.5`",
            ),
        ] {
            let found = issues(&text(&[line]));
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert!(found[0].message.contains(message), "{line}: {found:?}");
        }
    }

    #[test]
    fn a_daemon_that_is_not_root_may_run_programs_only_as_itself() {
        let (user, group) = nobody();
        let as_nobody = Credentials {
            uid: user.uid.as_raw(),
            gid: group.gid.as_raw(),
        };
        // Itself: accepted, and nothing will change (it could not).
        assert_eq!(problems(&text(&["user: nobody"]), as_nobody), []);
        let config = crate::config::parse_for(
            &text(&["user: nobody"]),
            std::path::Path::new(crate::config::testing::PATH),
            as_nobody,
        )
        .unwrap();
        let identity = config.programs["web"].identity.clone().unwrap();
        assert_eq!((identity.uid, identity.groups), (as_nobody.uid, None));
        let group_line = format!("group: {}", group.gid);
        assert_eq!(
            problems(&text(&["user: nobody", &group_line]), as_nobody),
            []
        );
        // Anyone else, or another group: refused at the key, when the file is loaded.
        let not_root = format!(
            "the daemon is not root (it runs as uid {}, gid {})",
            as_nobody.uid, as_nobody.gid
        );
        let found = problems(&text(&["user: root"]), as_nobody);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0, found[0].1, found[0].2.as_str()),
            (4, 11, "programs.web.user")
        );
        assert!(found[0].3.starts_with(&not_root), "{found:?}");
        assert!(found[0].3.contains("not as user root (uid 0)"), "{found:?}");
        for lines in [&["user: nobody", "group: root"][..], &["group: root"]] {
            let found = problems(&text(lines), as_nobody);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].2, "programs.web.group", "{found:?}");
            assert!(found[0].3.contains("not group root (gid 0)"), "{found:?}");
        }
        // The user's primary group is not the daemon's: said at `user`.
        let other_gid = Credentials {
            gid: as_nobody.gid + 1,
            ..as_nobody
        };
        let found = problems(&text(&["user: nobody"]), other_gid);
        assert_eq!(found[0].2, "programs.web.user", "{found:?}");
        assert!(
            found[0].3.contains("the primary group of this user"),
            "{found:?}"
        );
        // Root may give any identity.
        let root = Credentials { uid: 0, gid: 0 };
        assert_eq!(problems(&text(&["user: nobody", "group: root"]), root), []);
    }
}
