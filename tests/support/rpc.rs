//! The gRPC side: a client to the daemon and the status queries and waits the tests share.

use taskmaster::proto::{self, taskmaster_client::TaskmasterClient};
use tonic::transport::Channel;

use super::wait::{DEADLINE, expect};

pub type Client = TaskmasterClient<Channel>;

/// The status of every instance, by name.
pub async fn status(client: &mut Client) -> Vec<proto::InstanceStatus> {
    client
        .status(proto::StatusRequest { names: vec![] })
        .await
        .expect("Status")
        .into_inner()
        .instances
}

/// What the daemon says of itself (its pid, run, start time).
pub async fn daemon_info(client: &mut Client) -> proto::DaemonInfo {
    client
        .status(proto::StatusRequest { names: vec![] })
        .await
        .expect("Status")
        .into_inner()
        .daemon
        .expect("Status names its daemon")
}

/// The status of one instance.
pub async fn instance(client: &mut Client, name: &str) -> proto::InstanceStatus {
    status(client)
        .await
        .into_iter()
        .find(|instance| instance.name == name)
        .unwrap_or_else(|| panic!("no instance {name}"))
}

/// Waits until instance `name` is in `state`; returns its status then.
pub async fn wait_state(
    client: &mut Client,
    name: &str,
    state: proto::State,
) -> proto::InstanceStatus {
    let what = format!("{name} to be {state:?}");
    expect(&what, || {
        let mut client = client.clone();
        async move {
            let found = instance(&mut client, name).await;
            (found.state() == state).then_some(found)
        }
    })
    .await
}

/// Waits until instance `name` runs again with a pid other than `old`; its status then.
pub async fn wait_new_pid(client: &mut Client, name: &str, old: u32) -> proto::InstanceStatus {
    let what = format!("a new pid for {name}");
    expect(&what, || {
        let mut client = client.clone();
        async move {
            let now = instance(&mut client, name).await;
            (now.state() == proto::State::Running && now.pid != old).then_some(now)
        }
    })
    .await
}

/// The next event of `kind` on `watch`; earlier ones are skipped.
pub async fn next_of(
    watch: &mut tonic::Streaming<proto::Event>,
    kind: proto::EventKind,
    instance: &str,
) -> proto::Event {
    let wanted = async {
        while let Ok(Some(event)) = watch.message().await {
            if event.kind() == kind && event.instance == instance {
                return event;
            }
        }
        panic!("the event stream ended before a {kind:?} event of {instance:?}");
    };
    tokio::time::timeout(DEADLINE, wanted)
        .await
        .unwrap_or_else(|_| panic!("no {kind:?} event of {instance:?} within {DEADLINE:?}"))
}
