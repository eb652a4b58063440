//! `control.json`: how the command line of a data dir finds the node
//! running on it and proves it may steer it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file in the data dir.
pub const CONTROL_FILE: &str = "control.json";

/// Where a running node's control API is and its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    /// The web UI's URL (`http://127.0.0.1:5050/`).
    pub url: String,
    /// The key for `Authorization: Bearer`.
    pub api_key: String,
    /// Over HTTPS: the certificate (PEM file) the node serves, to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<std::path::PathBuf>,
}

impl Control {
    /// Writes the record, readable by the owner only.
    pub fn write(
        data_dir: &Path,
        url: &str,
        api_key: &str,
        cert: Option<&Path>,
    ) -> std::io::Result<()> {
        let me = Control {
            url: url.to_owned(),
            api_key: api_key.to_owned(),
            cert: cert.map(Path::to_path_buf),
        };
        let json = serde_json::to_vec_pretty(&me).map_err(std::io::Error::other)?;
        shoal_fs::durable::replace(
            &data_dir.join(CONTROL_FILE),
            &json,
            shoal_fs::durable::Replace {
                private: true,
                sync: false,
            },
        )
    }

    /// Removes the record if it is still the one with `api_key` (a node
    /// started since on the same data dir keeps its own).
    pub fn remove(data_dir: &Path, api_key: &str) {
        let path = data_dir.join(CONTROL_FILE);
        if let Ok(Some(c)) = Self::read(data_dir)
            && c.api_key == api_key
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The record in `data_dir`, if there is one.
    pub fn read(data_dir: &Path) -> std::io::Result<Option<Control>> {
        let path = data_dir.join(CONTROL_FILE);
        match std::fs::read(&path) {
            Ok(t) => serde_json::from_slice(&t)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of the node running on `data_dir`: `None` if no node
    /// runs there (a record a crashed node left is ignored).
    pub fn of_running(data_dir: &Path) -> std::io::Result<Option<Control>> {
        let Some(c) = Self::read(data_dir)? else {
            return Ok(None);
        };
        match shoal_node::listening::Listening::of_running(data_dir) {
            Ok(Some(_)) => Ok(Some(c)),
            _ => Ok(None),
        }
    }
}
