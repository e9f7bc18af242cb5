//! `alerts test RULE`: the AlertsTest RPC.

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// Has the daemon send a test alert through each sink of `rule`: a line per sink; failed if
/// one did not take it.
pub async fn test(
    connection: &mut Connection,
    output: &mut Output<'_>,
    rule: &str,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = taskmaster::proto::AlertsTestRequest {
        rule: rule.to_string(),
    };
    let response = connection.answer(client.alerts_test(request)).await?;
    output.write(&render::alerts_test(&response))?;
    if response.sinks.iter().all(|sink| sink.ok) {
        Ok(Outcome::Success)
    } else {
        Ok(Outcome::Failed)
    }
}
