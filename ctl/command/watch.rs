//! `watch`: prints the daemon's events as they come until Ctrl-C, the daemon stops, or the
//! reader of stdout goes away.

use taskmaster::proto::{self, EventKind};

use super::{Output, Since, stream};
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// Prints events until the stream ends. Ending after the daemon said it was stopping is
/// success; any other end is a lost connection.
pub async fn watch(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
    json: bool,
    since: Option<Since>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::WatchEventsRequest {
        names: names.to_vec(),
        since: since.map(|since| since.seq),
        run: since.and_then(|since| since.run),
    };
    let mut events = connection.answer(client.watch_events(request)).await?;
    let mut daemon_stopping = false;
    stream::each_message(connection, &mut events, |event| {
        daemon_stopping |= event.kind() == EventKind::DaemonStopping;
        if json {
            // With several hosts, the host is a field of the object.
            let line = render::event_json(&event, output.host_name());
            output.write_bytes((line + "\n").as_bytes())
        } else {
            let line = render::event_line(&event, &chrono::Local, output.palette);
            output.write(&(line + "\n"))
        }
    })
    .await?;
    if daemon_stopping {
        Ok(Outcome::Success)
    } else {
        Err(CtlError::Lost {
            target: connection.target().clone(),
            reason: "the event stream ended".into(),
        })
    }
}
