//! Starts the syslog listener of a [`Netraven`] from its settings (`[syslog]`): configuration
//! changes reported by devices queue a backup of them (see
//! [`netraven_drivers::syslog`] and [`netraven_core::triggers`]).

use crate::Netraven;
use netraven_core::error::{Error, Result};
use netraven_core::triggers::{Debouncer, SyslogSettings};
use netraven_drivers::platform::{builtin_platforms, load_platform_dir};
use netraven_drivers::syslog::{ChangeRules, SyslogListener, SyslogOptions};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The addresses a started listener is bound to (UDP, TCP).
pub type Bound = (Option<SocketAddr>, Option<SocketAddr>);

/// Starts the listener when `settings.listen` is set (`Ok(None)` when it is not), with the
/// `config_change` patterns of the built-in platforms and the files of `platforms_dir` (which
/// replace built-ins of the same name). Runs until `shutdown`.
pub async fn start(
    nr: &Netraven,
    settings: &SyslogSettings,
    platforms_dir: Option<&Path>,
    shutdown: CancellationToken,
) -> Result<Option<Bound>> {
    let Some(listen) = settings.listen.as_deref() else {
        return Ok(None);
    };
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Error::invalid(format!(
            "syslog.listen: '{listen}' is not an address and port (e.g. 0.0.0.0:514)"
        ))
    })?;
    if !settings.udp && !settings.tcp {
        return Err(Error::invalid(
            "syslog: listen is set but both udp and tcp are off",
        ));
    }
    let mut platforms = builtin_platforms()?;
    if let Some(dir) = platforms_dir {
        platforms.extend(load_platform_dir(dir)?);
    }
    let rules = ChangeRules::new(&platforms);
    let debouncer = Debouncer::new(
        nr.engine().clone(),
        Duration::from_secs(settings.debounce_secs),
    );
    let devices: std::sync::Arc<dyn netraven_core::store::DeviceStore> = nr.store().clone();
    let listener = SyslogListener::new(devices, rules, debouncer);
    let options = SyslogOptions {
        udp: settings.udp.then_some(addr),
        tcp: settings.tcp.then_some(addr),
    };
    Ok(Some(listener.start(&options, shutdown).await?))
}
