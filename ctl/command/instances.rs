//! The commands about programs and instances: `status`, `start`, `stop`, `restart`, `signal`
//! and `pid`, each one RPC of the same name (`pid` asks `Status`).

use taskmaster::proto;

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

pub async fn status(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
    json: bool,
) -> Result<Outcome, CtlError> {
    let response = status_of(connection, names).await?;
    if json {
        output.write(&render::status_json(&response.instances))?;
        return Ok(Outcome::Success);
    }
    let mut text = render::status_table(&response.instances, output.palette);
    // Of one instance asked for, the stderr of its last failure too.
    if let [instance] = response.instances.as_slice()
        && !names.is_empty()
    {
        text.push_str(&render::last_stderr(instance));
    }
    output.write(&text)?;
    Ok(Outcome::Success)
}

/// The daemon's answer to `Status` for `names` (none: all).
pub async fn status_of(
    connection: &mut Connection,
    names: &[String],
) -> Result<proto::StatusResponse, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest {
        names: names.to_vec(),
    };
    connection.answer(client.status(request)).await
}

pub async fn start(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StartRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    action_done(output, &connection.answer(client.start(request)).await?)
}

pub async fn stop(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StopRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    action_done(output, &connection.answer(client.stop(request)).await?)
}

pub async fn restart(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::RestartRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    action_done(output, &connection.answer(client.restart(request)).await?)
}

/// Sends `signal` to `names` (to each leader only with `leader`): a line per instance.
pub async fn signal(
    connection: &mut Connection,
    output: &mut Output<'_>,
    signal: &str,
    names: &[String],
    leader: bool,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::SignalRequest {
        signal: signal.to_string(),
        names: names.to_vec(),
        leader,
    };
    action_done(output, &connection.answer(client.signal(request)).await?)
}

/// Prints the per-instance results of start, stop, restart or signal; failed if any instance
/// failed.
fn action_done(
    output: &mut Output<'_>,
    response: &proto::ActionResponse,
) -> Result<Outcome, CtlError> {
    output.write(&render::action_results(response))?;
    if response.results.iter().all(|result| result.ok) {
        Ok(Outcome::Success)
    } else {
        Ok(Outcome::Failed)
    }
}

/// The pids of the instances of `name`, or the daemon's pid. An instance without a process is
/// reported on stderr and fails the command, so `kill $(taskctl pid web)` never sees a 0.
pub async fn pid(
    connection: &mut Connection,
    output: &mut Output<'_>,
    name: Option<&str>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest {
        names: name.map(str::to_string).into_iter().collect(),
    };
    let response = connection.answer(client.status(request)).await?;
    if name.is_none() {
        let pid = response.daemon.map_or(0, |daemon| daemon.pid);
        output.write(&format!("{pid}\n"))?;
        return Ok(Outcome::Success);
    }
    let mut outcome = Outcome::Success;
    for instance in &response.instances {
        if instance.pid == 0 {
            output.warn(&format!("{}: not running", instance.name));
            outcome = Outcome::Failed;
        } else {
            output.write(&format!("{}\n", instance.pid))?;
        }
    }
    Ok(outcome)
}
