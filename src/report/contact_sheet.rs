//! Contact sheets: all screenshots of one tab tiled into one PNG, in the order they were taken,
//! so a reader sees a tab's whole story at a glance (and a CI page can show one image per tab).

use image::{imageops, Rgba, RgbaImage};
use std::path::{Path, PathBuf};

/// Width of one tile; screenshots keep their aspect ratio.
pub const TILE_W: u32 = 320;
const GAP: u32 = 8;
const COLUMNS: u32 = 3;
const BACKGROUND: Rgba<u8> = Rgba([30, 33, 40, 255]);

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("decoding {0}: {1}")]
    Decode(PathBuf, image::ImageError),
    #[error("encoding the contact sheet: {0}")]
    Encode(image::ImageError),
}

/// The screenshots of `tab` in `dir` (`tab-<N>-*.png`), oldest first.
pub fn screenshots_of_tab(dir: &Path, tab: usize) -> Vec<PathBuf> {
    let prefix = format!("tab-{tab}-");
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png") && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p))
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Tile the PNGs into one PNG, `COLUMNS` across; `None` when there is nothing to tile.
pub fn render(pngs: &[PathBuf]) -> Result<Option<Vec<u8>>, SheetError> {
    let mut tiles = Vec::new();
    for p in pngs {
        let bytes = std::fs::read(p).map_err(|e| SheetError::Read(p.clone(), e))?;
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).map_err(|e| SheetError::Decode(p.clone(), e))?.to_rgba8();
        let h = ((img.height() as u64 * TILE_W as u64) / img.width().max(1) as u64).max(1) as u32;
        tiles.push(imageops::resize(&img, TILE_W, h, imageops::FilterType::Triangle));
    }
    if tiles.is_empty() {
        return Ok(None);
    }
    let cols = COLUMNS.min(tiles.len() as u32);
    let rows: Vec<&[RgbaImage]> = tiles.chunks(cols as usize).collect();
    let row_h: Vec<u32> = rows.iter().map(|r| r.iter().map(|t| t.height()).max().unwrap_or(0)).collect();
    let width = GAP + cols * (TILE_W + GAP);
    let height = GAP + row_h.iter().map(|h| h + GAP).sum::<u32>();
    let mut sheet = RgbaImage::from_pixel(width, height, BACKGROUND);
    let mut y = GAP;
    for (row, h) in rows.iter().zip(&row_h) {
        for (i, tile) in row.iter().enumerate() {
            imageops::overlay(&mut sheet, tile, (GAP + i as u32 * (TILE_W + GAP)) as i64, y as i64);
        }
        y += h + GAP;
    }
    let mut out = std::io::Cursor::new(Vec::new());
    sheet.write_to(&mut out, image::ImageFormat::Png).map_err(SheetError::Encode)?;
    Ok(Some(out.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, c: [u8; 3]) -> Vec<u8> {
        let img = RgbaImage::from_pixel(w, h, Rgba([c[0], c[1], c[2], 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn tiles_a_tabs_screenshots_in_order_and_ignores_other_tabs() {
        let dir = std::env::temp_dir().join(format!("helix-e2e-sheet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let colours = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]];
        for (i, c) in colours.iter().enumerate() {
            std::fs::write(dir.join(format!("tab-1-{i}.png")), png(640, 400, *c)).unwrap();
            // Modification times order the tiles; keep them apart.
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        std::fs::write(dir.join("tab-11-x.png"), png(64, 40, [255, 255, 255])).unwrap();
        let files = screenshots_of_tab(&dir, 1);
        assert_eq!(files.len(), 4, "{files:?}");
        let sheet = image::load_from_memory(&render(&files).unwrap().unwrap()).unwrap().to_rgba8();
        assert_eq!(sheet.width(), GAP + 3 * (TILE_W + GAP));
        assert_eq!(sheet.height(), GAP + 2 * (200 + GAP));
        // Tile centres carry the colours in order: three in the first row, one in the second.
        let centre = |col: u32, row: u32| sheet.get_pixel(GAP + col * (TILE_W + GAP) + TILE_W / 2, GAP + row * (200 + GAP) + 100).0;
        assert_eq!(&centre(0, 0)[..3], &colours[0]);
        assert_eq!(&centre(2, 0)[..3], &colours[2]);
        assert_eq!(&centre(0, 1)[..3], &colours[3]);
        assert_eq!(centre(1, 1), BACKGROUND.0);
        assert!(render(&[]).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
