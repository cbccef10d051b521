//! The run's browsers: the one Chromium it launches, or the remote ones it was given.
//!
//! A run's tabs are numbered once, across all its browsers ([`TabIds`]), and the tab id says
//! where a tab lives: the K-th tab the run opens goes to browser K mod N (round-robin by tab index, so two
//! runs of one plan put the same tabs in the same browsers, and `summary.json` says which). Every
//! call on a tab goes to its browser; everything about the whole run (its tabs, a death, the
//! webrtc-internals record) is asked of each browser and put together.

use super::{BrowserDump, BrowserError, BrowserOptions, Chromium, DumpDigest, RemoteBrowser, VideoInput};
use crate::timeline::{TabId, Timeline};
use std::sync::Mutex;

/// The ids a browser gives its tabs: `first`, `first + step`, `first + 2·step`, … Shard K of a
/// run split N ways numbers its tabs K−1, K−1+N, …, so no two shards share a tab id and a merged
/// run names each tab once, whatever each shard opened; a probe's browser starts where the last
/// probe's stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TabIds {
    pub first: TabId,
    /// At least 1.
    pub step: usize,
}

impl Default for TabIds {
    fn default() -> Self {
        TabIds { first: 0, step: 1 }
    }
}

impl TabIds {
    /// The numbering of shard `index` (1-based) of `count`.
    pub fn of_shard(shard: crate::shard::Shard) -> TabIds {
        TabIds { first: shard.index - 1, step: shard.count.max(1) }
    }

    /// The `k`-th id (from 0).
    pub fn nth(&self, k: usize) -> TabId {
        self.first + k * self.step
    }

    /// Which of the ids `tab` is (from 0): `nth`'s inverse.
    pub fn index_of(&self, tab: TabId) -> usize {
        tab.saturating_sub(self.first) / self.step.max(1)
    }
}

pub struct Browser {
    /// Never empty.
    members: Vec<Chromium>,
    tab_ids: TabIds,
    /// How many ids the run has taken.
    taken: Mutex<usize>,
}

impl Browser {
    /// Launches the local Chromium: a run of one browser.
    pub async fn launch(opts: BrowserOptions, timeline: Timeline) -> Result<Browser, BrowserError> {
        let member = Chromium::launch(&opts, timeline).await?;
        Ok(Browser { members: vec![member], tab_ids: opts.tab_ids, taken: Mutex::new(0) })
    }

    /// Connects to each remote browser, in order (the order of `--browser` flags, or of the
    /// target file's `browsers`). One that cannot be reached fails the start: a run spread over
    /// fewer browsers than asked for would measure something else.
    pub async fn connect(remotes: &[RemoteBrowser], tab_ids: TabIds, timeline: Timeline) -> Result<Browser, BrowserError> {
        if remotes.is_empty() {
            return Err(BrowserError::Launch("no remote browser given".into()));
        }
        let mut members = Vec::with_capacity(remotes.len());
        for r in remotes {
            members.push(Chromium::connect(r, timeline.clone()).await?);
        }
        Ok(Browser { members, tab_ids, taken: Mutex::new(0) })
    }

    /// The local browser when `remotes` is empty, else the remote ones.
    pub async fn start(opts: BrowserOptions, remotes: &[RemoteBrowser], timeline: Timeline) -> Result<Browser, BrowserError> {
        match remotes {
            [] => Browser::launch(opts, timeline).await,
            _ => Browser::connect(remotes, opts.tab_ids, timeline).await,
        }
    }

    fn member(&self, tab: TabId) -> &Chromium {
        &self.members[self.tab_ids.index_of(tab) % self.members.len()]
    }

    /// Which browser a tab runs in: `local`, or the remote browser's endpoint as given.
    pub fn placement(&self, tab: TabId) -> String {
        self.member(tab).name()
    }

    /// Process id of the local Chromium; `None` for remote browsers (none of their processes
    /// are this machine's).
    pub fn pid(&self) -> Option<u32> {
        self.members.iter().find_map(Chromium::pid)
    }

    /// Why a browser of the run died, once one has: the run cannot go on without its tabs.
    pub fn death(&self) -> Option<String> {
        self.members.iter().find_map(Chromium::death)
    }

    /// Ids of the tabs currently open, in all browsers.
    pub fn open_tabs(&self) -> Vec<TabId> {
        let mut v: Vec<TabId> = self.members.iter().flat_map(Chromium::open_tabs).collect();
        v.sort_unstable();
        v
    }

    /// Closes every browser's tabs, then the local browser (remote ones are disconnected).
    pub async fn close(self) -> Result<(), BrowserError> {
        let mut result = Ok(());
        for m in self.members {
            let r = m.close().await;
            result = result.and(r);
        }
        result
    }

    /// Kill the local Chromium at once; disconnect from remote ones.
    pub fn kill(self) {
        for m in self.members {
            m.kill();
        }
    }

    /// Opens `url` in a new tab (see `Chromium::open_tab`), in the browser its index falls to.
    pub async fn open_tab(&self, url: &str, cookies: Vec<(String, String)>) -> Result<TabId, BrowserError> {
        let tab = self.take_tab_id();
        self.member(tab).open_tab(tab, url, cookies).await
    }

    /// The next tab id of the run; synthetic viewers take theirs here too, so a tab id names
    /// one viewer's "page" whichever kind it is.
    pub fn take_tab_id(&self) -> TabId {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.tab_ids.nth(*taken);
        *taken += 1;
        t
    }

    pub async fn evaluate(&self, tab: TabId, expression: &str) -> Result<serde_json::Value, BrowserError> {
        self.member(tab).evaluate(tab, expression).await
    }

    pub async fn video_input(&self, tab: TabId, selector: &str, input: VideoInput) -> Result<usize, BrowserError> {
        self.member(tab).video_input(tab, selector, input).await
    }

    pub async fn key_event(&self, tab: TabId, key: &str, code: &str, key_code: i64, down: bool) -> Result<(), BrowserError> {
        self.member(tab).key_event(tab, key, code, key_code, down).await
    }

    /// Clicks the visible, enabled control whose text, `title` or `aria-label` is `text` (e.g.
    /// the "Live Stream" toggle or "Reconnect"), with real mouse events.
    pub async fn click_text(&self, tab: TabId, text: &str) -> Result<(), BrowserError> {
        self.member(tab).press(tab, text).await
    }

    pub async fn press(&self, tab: TabId, want: &str) -> Result<(), BrowserError> {
        self.member(tab).press(tab, want).await
    }

    pub async fn reload(&self, tab: TabId) -> Result<(), BrowserError> {
        self.member(tab).reload(tab).await
    }

    pub async fn navigate(&self, tab: TabId, url: &str) -> Result<(), BrowserError> {
        self.member(tab).navigate(tab, url).await
    }

    pub async fn close_tab(&self, tab: TabId) -> Result<(), BrowserError> {
        self.member(tab).close_tab(tab).await
    }

    pub async fn cut_tab(&self, tab: TabId) -> Result<(), BrowserError> {
        self.member(tab).cut_tab(tab).await
    }

    pub async fn screenshot(&self, tab: TabId) -> Result<Vec<u8>, BrowserError> {
        self.member(tab).screenshot(tab).await
    }

    pub async fn screenshot_video(&self, tab: TabId, index: usize) -> Result<Vec<u8>, BrowserError> {
        self.member(tab).screenshot_video(tab, index).await
    }

    /// Where each browser's dump goes: nowhere apart for a run's one local browser, by its
    /// place in the list for remote ones.
    fn dump_place(&self, k: usize) -> Option<usize> {
        self.members[k].pid().is_none().then_some(k)
    }

    /// Every browser's webrtc-internals dump (see `Chromium::internals_dump`).
    pub async fn internals_dumps(&self) -> Result<Vec<BrowserDump>, BrowserError> {
        let mut out = Vec::with_capacity(self.members.len());
        for (k, m) in self.members.iter().enumerate() {
            out.push(BrowserDump { browser: self.dump_place(k), dump: m.internals_dump().await? });
        }
        Ok(out)
    }

    /// What [`Browser::internals_dumps`] would hold now, in brief (see `digest_of_browsers`).
    pub async fn internals_digest(&self) -> Result<DumpDigest, BrowserError> {
        let mut digests = Vec::with_capacity(self.members.len());
        for (k, m) in self.members.iter().enumerate() {
            digests.push((self.dump_place(k), m.internals_digest().await?));
        }
        Ok(super::digest_of_browsers(digests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_number_their_tabs_apart() {
        let shard = |index, count| TabIds::of_shard(crate::shard::Shard { index, count });
        let (one, two, three) = (shard(1, 3), shard(2, 3), shard(3, 3));
        let ids = |t: TabIds| (0..4).map(|k| t.nth(k)).collect::<Vec<_>>();
        assert_eq!((ids(one), ids(two), ids(three)), (vec![0, 3, 6, 9], vec![1, 4, 7, 10], vec![2, 5, 8, 11]));
        // The K-th tab of a shard is its K-th, for the round-robin over browsers.
        assert!((0..4).all(|k| two.index_of(two.nth(k)) == k));
        assert_eq!(ids(TabIds::default()), vec![0, 1, 2, 3]);
        assert_eq!(ids(TabIds { first: 7, step: 1 }), vec![7, 8, 9, 10]);
    }
}
