//! The `--www` files (the dashboard): paths that cannot leave the directory or reach a
//! dotfile, a content type per extension, and gzip and brotli copies by `Accept-Encoding`,
//! compressed once per file version and kept in a bounded cache, with an ETag so a reload
//! revalidates with a 304 instead of downloading again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use crate::limits::{MAX_STATIC_CACHE, MAX_STATIC_FILE};

/// Brotli's best quality: files are compressed once per version, so the time is spent once.
const BROTLI_QUALITY: u32 = 11;
/// Brotli's window (log2 bytes); 22 covers the whole 300 KB wasm.
const BROTLI_WINDOW: u32 = 22;

/// One file as served: its bytes, compressed copies when smaller, and its validator.
#[derive(Debug)]
pub struct File {
    pub content_type: &'static str,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    pub etag: String,
}

impl File {
    fn size(&self) -> usize {
        self.identity.len()
            + self.gzip.as_ref().map_or(0, Bytes::len)
            + self.brotli.as_ref().map_or(0, Bytes::len)
    }
}

/// Why a file is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    NotFound,
    TooLarge,
}

/// A cached file with the length and modification time it was read at.
type Cache = HashMap<PathBuf, (u64, SystemTime, Arc<File>)>;

/// The served directory and its cache, keyed by real path and checked against the file's
/// length and modification time on every request, so an edited file is never served stale.
#[derive(Debug)]
pub struct StaticFiles {
    root: PathBuf,
    cache: Mutex<Cache>,
}

impl StaticFiles {
    pub fn new(root: PathBuf) -> StaticFiles {
        StaticFiles {
            root,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The file at URL path `path`; `/` and directories serve their `index.html`.
    pub async fn get(&self, path: &str) -> Result<Arc<File>, Missing> {
        let relative = safe_relative_path(path).ok_or(Missing::NotFound)?;
        let mut file = self.root.join(relative);
        if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
            file.push("index.html");
        }
        // A symlink must not lead out of the served directory.
        let (Ok(real_root), Ok(real_file)) = (
            tokio::fs::canonicalize(&self.root).await,
            tokio::fs::canonicalize(&file).await,
        ) else {
            return Err(Missing::NotFound);
        };
        let Ok(inside) = real_file.strip_prefix(&real_root) else {
            return Err(Missing::NotFound);
        };
        // A symlink may not lead to a dotfile either.
        if inside.components().any(is_hidden) {
            return Err(Missing::NotFound);
        }
        let meta = match tokio::fs::metadata(&real_file).await {
            Ok(meta) if meta.is_file() => meta,
            _ => return Err(Missing::NotFound),
        };
        if meta.len() > MAX_STATIC_FILE {
            return Err(Missing::TooLarge);
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some((len, time, file)) = self.lock().get(&real_file) {
            if *len == meta.len() && *time == modified {
                return Ok(file.clone());
            }
        }
        let contents = tokio::fs::read(&real_file)
            .await
            .map_err(|_| Missing::NotFound)?;
        let content_type = content_type(&real_file);
        let compress = compressible(content_type);
        // Compression takes tens of milliseconds for the wasm: off the relay thread.
        let file = tokio::task::spawn_blocking(move || prepare(contents, content_type, compress))
            .await
            .map_err(|_| Missing::NotFound)?;
        let file = Arc::new(file);
        let mut cache = self.lock();
        let cached: usize = cache.values().map(|(_, _, f)| f.size()).sum();
        if cached + file.size() <= MAX_STATIC_CACHE {
            cache.insert(real_file, (meta.len(), modified, file.clone()));
        }
        Ok(file)
    }

    /// Reads and compresses every file under the directory (skipping dotfiles), so the first
    /// page load does not wait for brotli. Stops at the cache's bound.
    pub async fn warm(&self) {
        let mut pending = vec![String::new()];
        let mut seen = 0usize;
        while let Some(dir) = pending.pop() {
            let Ok(mut entries) =
                tokio::fs::read_dir(self.root.join(dir.trim_start_matches('/'))).await
            else {
                continue;
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let path = format!("{dir}/{name}");
                match entry.file_type().await {
                    Ok(kind) if kind.is_dir() => pending.push(path),
                    Ok(kind) if kind.is_file() => {
                        let _ = self.get(&path).await;
                        seen += 1;
                        if seen >= 10_000 {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn prepare(contents: Vec<u8>, content_type: &'static str, compress: bool) -> File {
    let identity = Bytes::from(contents);
    let smaller = |packed: Vec<u8>| (packed.len() < identity.len()).then(|| Bytes::from(packed));
    let (gzip, brotli) = if compress {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzip = gzip
            .write_all(&identity)
            .and_then(|()| gzip.finish())
            .ok()
            .and_then(smaller);
        let mut brotli =
            brotli::CompressorWriter::new(Vec::new(), 4096, BROTLI_QUALITY, BROTLI_WINDOW);
        let brotli = brotli
            .write_all(&identity)
            .and_then(|()| brotli.flush())
            .ok()
            .map(|()| brotli.into_inner())
            .and_then(smaller);
        (gzip, brotli)
    } else {
        (None, None)
    };
    // A strong validator from the content itself: identical bytes, identical tag.
    let etag = format!("\"{:016x}-{:x}\"", fnv1a(&identity), identity.len());
    File {
        content_type,
        identity,
        gzip,
        brotli,
        etag,
    }
}

/// FNV-1a, 64 bits: an ETag needs to change with the content, not to resist attackers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Which encoding to send for an `Accept-Encoding` header: brotli, then gzip, else none.
/// An encoding listed with `q=0` is refused.
pub fn pick_encoding(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    let accepted = |wanted: &str| {
        accept.split(',').any(|entry| {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case(wanted) || name == "*") && !refused
        })
    };
    if accepted("br") {
        Some("br")
    } else if accepted("gzip") {
        Some("gzip")
    } else {
        None
    }
}

/// The URL path as a relative path of plain names: no `..`, no root, no backslashes or NULs,
/// and no dotfile or dot-directory (`.git`, `.env`) anywhere in it.
fn safe_relative_path(path: &str) -> Option<PathBuf> {
    let decoded = crate::handshake::percent_decode(path)?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut relative = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(_) if is_hidden(component) => return None,
            Component::Normal(name) => relative.push(name),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(relative)
}

fn is_hidden(component: Component<'_>) -> bool {
    matches!(component, Component::Normal(name) if name.to_str().map_or(true, |n| n.starts_with('.')))
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        // Browsers compile WebAssembly while it streams only when served with this type.
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Images are compressed already; text and WebAssembly shrink by half or more.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "application/json" | "application/wasm" | "image/svg+xml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_cannot_leave_the_served_directory_or_reach_dotfiles() {
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
        assert_eq!(
            safe_relative_path("/js/app.js"),
            Some(PathBuf::from("js/app.js"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/a%5cb",
            "/a%00b",
            "/%zz",
            "/.env",
            "/.git/config",
            "/a/.hidden/b.js",
            "/%2egit/HEAD",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn warming_caches_every_file_but_dotfiles() {
        let root = std::env::temp_dir().join(format!("bridge-files-warm-{}", std::process::id()));
        std::fs::create_dir_all(root.join("vendor/pkg")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.join("vendor/pkg/a.wasm"), "\0asm").unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        let files = StaticFiles::new(root.clone());
        files.warm().await;
        let mut cached: Vec<String> = files
            .lock()
            .keys()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        cached.sort();
        assert_eq!(cached, ["a.wasm", "index.html"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        assert_eq!(
            content_type(Path::new("pkg/engine_bg.wasm")),
            "application/wasm"
        );
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn brotli_is_preferred_then_gzip_and_q0_refuses() {
        assert_eq!(pick_encoding(Some("gzip, deflate, br")), Some("br"));
        assert_eq!(pick_encoding(Some("gzip")), Some("gzip"));
        assert_eq!(pick_encoding(Some("br;q=0, gzip;q=0.5")), Some("gzip"));
        assert_eq!(pick_encoding(Some("identity")), None);
        assert_eq!(pick_encoding(None), None);
    }

    #[test]
    fn compressed_copies_decompress_to_the_file() {
        let text = "function f() { return 1; }\n".repeat(200).into_bytes();
        let file = prepare(text.clone(), "text/javascript; charset=utf-8", true);
        let gzip = file.gzip.expect("text shrinks");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
        let brotli = file.brotli.expect("text shrinks");
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut &brotli[..], &mut unbrotli).unwrap();
        assert_eq!(unbrotli, text);
        assert!(brotli.len() < text.len() / 10);
    }
}
