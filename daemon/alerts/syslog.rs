//! The syslog sink: one RFC 5424 datagram per alert to a local socket (`/dev/log`).

use std::path::PathBuf;

use tokio::net::UnixDatagram;

use super::alert::{Alert, Origin};
use crate::config::alerts::SyslogConfig;

pub struct Syslog {
    path: PathBuf,
    facility: u8,
    origin: Origin,
}

impl Syslog {
    pub fn new(config: &SyslogConfig, origin: &Origin) -> Syslog {
        Syslog {
            path: config.path.clone(),
            facility: config.facility,
            origin: origin.clone(),
        }
    }

    /// Sends `alert` as one datagram. A socket of its own each time: the daemon holds no
    /// descriptor between alerts, and a receiver that went away and came back is found again.
    /// Connected, so that a receiver whose queue is full makes the send wait (within the
    /// sink's timeout) rather than fail.
    pub async fn send(&self, alert: &Alert) -> Result<(), String> {
        let shown = self.path.display();
        let socket = UnixDatagram::unbound()
            .map_err(|error| format!("cannot make a datagram socket: {error}"))?;
        socket
            .connect(&self.path)
            .map_err(|error| format!("cannot reach syslog at {shown}: {error}"))?;
        let message = alert.syslog(&self.origin, self.facility);
        socket
            .send(&message)
            .await
            .map_err(|error| format!("cannot send to syslog at {shown}: {error}"))?;
        Ok(())
    }
}
