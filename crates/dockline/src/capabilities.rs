//! The image gives the binary its capabilities as permitted file capabilities only (see
//! docker/Dockerfile), so that exec works in a container that was not granted them; the
//! kernel honours a capability only once it is effective, so the process raises what it
//! was permitted. As root, or with systemd's AmbientCapabilities=, they are effective
//! already and nothing is changed (the unit's system call filter would refuse capset).

use caps::CapSet;

/// Makes every permitted capability effective; logs (and goes on) when that fails.
pub(crate) fn raise_permitted() {
    let raised = caps::read(None, CapSet::Permitted).and_then(|permitted| {
        if caps::read(None, CapSet::Effective)? == permitted {
            return Ok(());
        }
        caps::set(None, CapSet::Effective, &permitted)
    });
    if let Err(error) = raised {
        tracing::warn!(%error, "cannot make the permitted capabilities effective");
    }
}
