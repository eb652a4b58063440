//! Router port mapping for a Shoal node (`--port-mapping`): asks the
//! gateway to forward a TCP port to this machine, UPnP-IGD first (SSDP
//! multicast on the LAN), then PCP and NAT-PMP (UDP to the default
//! gateway). A [`Mapping`] holds a lease: renew it before it lapses
//! ([`Mapping::renew_in`]) and [`Mapping::remove`] it on exit.
//!
//! Opt-in only: nothing here runs unless the user asked for it (see
//! DESIGN.md, "Network etiquette").
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use igd_next::PortMappingProtocol;
use igd_next::aio::tokio::Tokio;

/// Shown on the router's list of mappings.
pub const DESCRIPTION: &str = "Shoal";
/// How long an SSDP search for a UPnP gateway waits.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);

/// No gateway mapped the port.
#[derive(Debug, thiserror::Error)]
#[error("no gateway mapped the port (UPnP: {upnp}; PCP/NAT-PMP: {natpmp})")]
pub struct MapError {
    /// What UPnP came to.
    pub upnp: String,
    /// What PCP and NAT-PMP came to.
    pub natpmp: String,
}

/// Renewing or removing a mapping failed.
#[derive(Debug, thiserror::Error)]
#[error("the gateway ({protocol}) did not {what} the mapping: {reason}")]
pub struct LeaseError {
    /// `UPnP`, `PCP` or `NAT-PMP`.
    pub protocol: &'static str,
    /// `renew` or `remove`.
    pub what: &'static str,
    /// What it said.
    pub reason: String,
}

enum How {
    Upnp(igd_next::aio::Gateway<Tokio>),
    Nat(crab_nat::PortMapping),
}

/// A port forwarded by the gateway to this machine.
pub struct Mapping {
    how: How,
    /// The address others dial: the gateway's external IP and port.
    pub external: SocketAddr,
    /// Where the gateway forwards to: this machine's address towards it.
    pub local: SocketAddr,
    lease: Duration,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("protocol", &self.protocol())
            .field("external", &self.external)
            .field("local", &self.local)
            .finish()
    }
}

/// Asks a gateway to forward TCP `port` (external, if free, the same
/// number) to this machine for `lease`.
pub async fn map(port: u16, lease: Duration) -> Result<Mapping, MapError> {
    let upnp = match upnp(port, lease).await {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    match nat(port, lease).await {
        Ok(m) => Ok(m),
        Err(natpmp) => Err(MapError { upnp, natpmp }),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(60)
}

/// This machine's address on the way to `gateway` (a connected UDP
/// socket sends nothing).
fn local_ip_towards(gateway: IpAddr) -> Result<IpAddr, String> {
    let any: IpAddr = if gateway.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let s = std::net::UdpSocket::bind((any, 0)).map_err(|e| e.to_string())?;
    s.connect((gateway, 1)).map_err(|e| e.to_string())?;
    s.local_addr().map(|a| a.ip()).map_err(|e| e.to_string())
}

async fn upnp(port: u16, lease: Duration) -> Result<Mapping, String> {
    let mut options = igd_next::SearchOptions::default();
    options.timeout = Some(SEARCH_TIMEOUT);
    options.single_search_timeout = Some(SEARCH_TIMEOUT);
    let gw = igd_next::aio::tokio::search_gateway(options)
        .await
        .map_err(|e| format!("no gateway answered the search ({e})"))?;
    let local = SocketAddr::new(local_ip_towards(gw.addr.ip())?, port);
    let tcp = PortMappingProtocol::TCP;
    let external_port = match gw
        .add_port(tcp, port, local, secs(lease), DESCRIPTION)
        .await
    {
        Ok(()) => port,
        Err(first) => gw
            .add_any_port(tcp, local, secs(lease), DESCRIPTION)
            .await
            .map_err(|e| format!("the gateway at {} refused: {first}; {e}", gw.addr))?,
    };
    let ip = match gw.get_external_ip().await {
        Ok(ip) => ip,
        Err(e) => {
            let _ = gw.remove_port(tcp, external_port).await;
            return Err(format!("the gateway gave no external address: {e}"));
        }
    };
    Ok(Mapping {
        how: How::Upnp(gw),
        external: SocketAddr::new(ip, external_port),
        local,
        lease,
    })
}

async fn nat(port: u16, lease: Duration) -> Result<Mapping, String> {
    let gateway = default_gateway().ok_or_else(|| "no default gateway found".to_owned())?;
    let client = local_ip_towards(gateway)?;
    let internal = NonZeroU16::new(port).ok_or_else(|| "port 0".to_owned())?;
    let options = crab_nat::PortMappingOptions {
        external_port: Some(internal),
        lifetime_seconds: Some(secs(lease)),
        timeout_config: Some(crab_nat::TimeoutConfig {
            initial_timeout: Duration::from_millis(250),
            max_retries: 3,
            max_retry_timeout: Some(Duration::from_secs(1)),
        }),
    };
    let m = crab_nat::PortMapping::new(
        gateway.into(),
        client,
        crab_nat::InternetProtocol::Tcp,
        internal,
        options,
    )
    .await
    .map_err(|e| format!("the gateway at {gateway} did not map it ({e:?})"))?;
    let ip = match m.mapping_type() {
        crab_nat::PortMappingType::Pcp { external_ip, .. } => external_ip,
        crab_nat::PortMappingType::NatPmp => {
            match crab_nat::natpmp::external_address(gateway.into(), options.timeout_config).await {
                Ok(ip) => IpAddr::V4(ip),
                Err(e) => {
                    let _ = m.try_drop().await;
                    return Err(format!("the gateway gave no external address ({e:?})"));
                }
            }
        }
    };
    let lease = Duration::from_secs(u64::from(m.lifetime()));
    Ok(Mapping {
        external: SocketAddr::new(ip, m.external_port().get()),
        local: SocketAddr::new(client, port),
        how: How::Nat(m),
        lease,
    })
}

impl Mapping {
    /// `UPnP`, `PCP` or `NAT-PMP`.
    pub fn protocol(&self) -> &'static str {
        match &self.how {
            How::Upnp(_) => "UPnP",
            How::Nat(m) => match m.mapping_type() {
                crab_nat::PortMappingType::NatPmp => "NAT-PMP",
                crab_nat::PortMappingType::Pcp { .. } => "PCP",
            },
        }
    }

    /// When to renew: half the lease the gateway granted.
    pub fn renew_in(&self) -> Duration {
        (self.lease / 2).max(Duration::from_secs(30))
    }

    /// Asks the gateway for a fresh lease.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let protocol = self.protocol();
        let err = |reason: String| LeaseError {
            protocol,
            what: "renew",
            reason,
        };
        match &mut self.how {
            How::Upnp(gw) => gw
                .add_port(
                    PortMappingProtocol::TCP,
                    self.external.port(),
                    self.local,
                    secs(self.lease),
                    DESCRIPTION,
                )
                .await
                .map_err(|e| err(e.to_string())),
            How::Nat(m) => {
                m.renew().await.map_err(|e| err(format!("{e:?}")))?;
                self.lease = Duration::from_secs(u64::from(m.lifetime()));
                Ok(())
            }
        }
    }

    /// Removes the mapping from the gateway.
    pub async fn remove(self) -> Result<(), LeaseError> {
        let protocol = self.protocol();
        let err = |reason: String| LeaseError {
            protocol,
            what: "remove",
            reason,
        };
        match self.how {
            How::Upnp(gw) => gw
                .remove_port(PortMappingProtocol::TCP, self.external.port())
                .await
                .map_err(|e| err(e.to_string())),
            How::Nat(m) => m.try_drop().await.map_err(|(e, _)| err(format!("{e:?}"))),
        }
    }
}

/// The IPv4 default gateway, from the routing table.
#[cfg(target_os = "linux")]
fn default_gateway() -> Option<IpAddr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route_table(&table)
}

/// The IPv4 default gateway: not read on this platform (UPnP finds the
/// gateway by itself; PCP and NAT-PMP need it).
#[cfg(not(target_os = "linux"))]
fn default_gateway() -> Option<IpAddr> {
    None
}

/// The gateway of the default route in `/proc/net/route` (hex, little
/// endian).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_route_table(table: &str) -> Option<IpAddr> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[1] != "00000000" {
            return None;
        }
        let g = u32::from_str_radix(f[2], 16).ok().filter(|&g| g != 0)?;
        Some(IpAddr::V4(std::net::Ipv4Addr::from(g.to_le_bytes())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_names_the_gateway() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(
            parse_route_table(table),
            Some("192.168.1.1".parse().unwrap())
        );
        assert_eq!(parse_route_table("Iface\tDestination\n"), None);
    }
}
