//! The commands about the daemon itself: `reload`, `shutdown` and `version` (which asks
//! `Status` for the daemon's version).

use taskmaster::proto;
use tonic::Code;

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// A config with errors is refused with `InvalidArgument`, which carries them all.
pub async fn reload(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    match client.reload(proto::ReloadRequest {}).await {
        Ok(response) => {
            output.write(&render::reload_summary(&response.into_inner()))?;
            Ok(Outcome::Success)
        }
        Err(status) if status.code() == Code::InvalidArgument => {
            Err(CtlError::Rejected(status.message().to_string()))
        }
        Err(status) => Err(connection.failure(status).await),
    }
}

pub async fn shutdown(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    connection
        .answer(client.shutdown(proto::ShutdownRequest {}))
        .await?;
    output.write("taskmasterd is shutting down\n")?;
    Ok(Outcome::Success)
}

/// Prints taskctl's version before it asks the daemon, so it shows even when that fails.
pub async fn version(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    output.write_bytes(taskctl_version().as_bytes())?;
    daemon_version(connection, output).await
}

/// `taskctl VERSION`, one line.
pub fn taskctl_version() -> String {
    format!("taskctl {}\n", env!("CARGO_PKG_VERSION"))
}

/// `taskmasterd VERSION`, as the daemon says it.
pub async fn daemon_version(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest { names: Vec::new() };
    let response = connection.answer(client.status(request)).await?;
    let daemon_version = response.daemon.map(|daemon| daemon.version);
    output.write(&format!(
        "taskmasterd {}\n",
        daemon_version.as_deref().unwrap_or("(unknown)")
    ))?;
    Ok(Outcome::Success)
}
