//! `corral top`: a live dashboard of this user's running sessions. A list of sessions (what `corral
//! ps` shows, with the proxy's allowed/denied counts), and for the selected one its layers and a
//! feed of what happens inside: connections allowed and refused, denied system calls, API requests,
//! limits hit, programs started.
//!
//! Split in two: the pure part ([`TopState`], built from session rows and their logs, and
//! [`render`], which draws it into a ratatui frame; tested with `TestBackend` snapshots) and the
//! I/O loop ([`top`]), which re-reads the sessions and only what was appended to their logs every
//! [`REFRESH`] (`sessionlog::LogFollower` keeps a byte offset per log).
//!
//! The terminal is given back (raw mode off, main screen, cursor shown) on every way out: return,
//! error (a guard's `Drop`), panic (a hook, before the default one prints) and SIGTERM / SIGHUP /
//! SIGINT / SIGQUIT (a flag the loop checks, so the guard runs). `NO_COLOR` (set and not empty,
//! <https://no-color.org>) turns every colour and style off; the selection stays visible by its `>`.

use crate::cmd_ps::{self, SessionRow};
use crate::sessionlog::{self, Activity, FeedItem, LogFollower, SessionLog, Verdict};
use corral_core::layer::{Achieved, LayerReport, Level};
use corral_sys::session;
use crossterm::event::{self, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sessions and their logs are read again.
pub const REFRESH: Duration = Duration::from_millis(500);

/// What `corral top` says, on stderr, when stdout is not a terminal.
pub const NOT_A_TERMINAL: &str = "corral top needs a terminal; use `corral ps --json` or `corral logs -f`";

/// Characters of a session id shown (ids are 16 hex digits; 8 tell them apart).
const ID_SHOWN: usize = 8;

/// One session as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// What `corral ps` shows of it.
    pub row: SessionRow,
    /// Its layers, from `session.start` (empty until it is read).
    pub layers: Vec<LayerReport>,
    /// Its recent events, oldest first.
    pub feed: Vec<FeedItem>,
    /// CPU use since the last refresh, in percent of one core (None on the first look).
    pub cpu_percent: Option<u64>,
}

impl SessionView {
    /// The view of a session from its row and its log.
    pub fn new(row: SessionRow, log: &SessionLog) -> SessionView {
        SessionView {
            row,
            layers: log.start.as_ref().map(|s| s.layers.clone()).unwrap_or_default(),
            feed: log.feed.iter().cloned().collect(),
            cpu_percent: None,
        }
    }
}

/// CPU use between two looks, in percent of one core: (time, CPU time) in milliseconds each.
fn cpu_percent(before: (u64, u64), now: (u64, u64)) -> Option<u64> {
    let wall = now.0.checked_sub(before.0).filter(|w| *w > 0)?;
    let cpu = now.1.checked_sub(before.1)?;
    Some(cpu * 100 / wall)
}

/// Everything one frame shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopState {
    /// The running sessions, oldest first.
    pub sessions: Vec<SessionView>,
    /// Now, in milliseconds since the Unix epoch (for the events' ages).
    pub now_ms: u64,
    /// Colours and styles on (false under `NO_COLOR`).
    pub color: bool,
    /// The outcome of the last action (a kill), shown at the bottom.
    pub notice: Option<String>,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave.
    Quit,
    /// Select the session above.
    Up,
    /// Select the session below.
    Down,
    /// SIGTERM to the selected session (as `corral kill ID`).
    Kill,
    /// Nothing.
    None,
}

/// The action of `key`: Up/Down or k/j move, `K` kills, q, Esc and Ctrl-C quit.
pub fn action(key: &KeyEvent) -> Action {
    if key.kind != KeyEventKind::Press {
        return Action::None;
    }
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Char('K') => Action::Kill,
        _ => Action::None,
    }
}

/// Which session is selected, by id, so the selection follows a session when others start or end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    id: Option<String>,
    index: usize,
}

impl Selection {
    /// The selected index among `ids`: the selected session's, or (when it ended) the one now at
    /// its place; None when there is no session.
    pub fn index(&mut self, ids: &[&str]) -> Option<usize> {
        if ids.is_empty() {
            return None;
        }
        if let Some(i) = self
            .id
            .as_deref()
            .and_then(|id| ids.iter().position(|s| *s == id))
        {
            self.index = i;
        }
        self.index = self.index.min(ids.len() - 1);
        self.id = Some(ids[self.index].to_string());
        Some(self.index)
    }

    /// Moves up (`up`) or down by one among `ids`, staying within the list.
    pub fn step(&mut self, ids: &[&str], up: bool) {
        let Some(i) = self.index(ids) else { return };
        let i = if up {
            i.saturating_sub(1)
        } else {
            (i + 1).min(ids.len() - 1)
        };
        self.index = i;
        self.id = Some(ids[i].to_string());
    }
}

/// Styles, or none of them under `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
struct Palette {
    color: bool,
}

impl Palette {
    fn style(self, s: Style) -> Style {
        if self.color {
            s
        } else {
            Style::default()
        }
    }
    fn fg(self, c: Color) -> Style {
        self.style(Style::default().fg(c))
    }
    fn bold(self) -> Style {
        self.style(Style::default().add_modifier(Modifier::BOLD))
    }
}

/// `42s`, `12m05s`, `3h04m`, `2d03h`.
fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn short_id(id: &str) -> &str {
    id.get(..ID_SHOWN).unwrap_or(id)
}

fn project(row: &SessionRow) -> String {
    row.workspace.file_name().map_or_else(
        || row.workspace.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Required => "required",
        Level::BestEffort => "best-effort",
    }
}

/// Draws `state` into `frame`, with session `selected` (an index into `state.sessions`) detailed.
pub fn render(frame: &mut Frame, state: &TopState, selected: Option<usize>) {
    let p = Palette { color: state.color };
    let area = frame.area();
    let [title, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let count = match state.sessions.len() {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("corral top", p.bold()),
            Span::raw(format!(" · {count}")),
        ])),
        title,
    );
    let help = "↑↓/jk select · K kill (SIGTERM) · q quit";
    let status_line = match &state.notice {
        Some(n) => Line::from(Span::styled(n.clone(), p.fg(Color::Yellow))),
        None => Line::from(Span::styled(help, p.fg(Color::DarkGray))),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    if state.sessions.is_empty() {
        let [_, middle, _] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1), Constraint::Fill(1)]).areas(body);
        frame.render_widget(
            Paragraph::new("no corral sessions running").alignment(Alignment::Center),
            middle,
        );
        return;
    }
    let selected = selected.filter(|i| *i < state.sessions.len());
    let detail = selected.and_then(|i| state.sessions.get(i));
    let layer_lines = detail.map_or_else(Vec::new, |s| {
        layer_lines(&s.layers, body.width.saturating_sub(2), p)
    });
    // The list gets its rows (up to a third of the screen), the layers theirs, the feed the rest.
    let list_height = u16::try_from(state.sessions.len())
        .unwrap_or(u16::MAX)
        .saturating_add(3)
        .min(body.height / 3)
        .max(4);
    let layers_height = u16::try_from(layer_lines.len())
        .unwrap_or(u16::MAX)
        .max(1)
        .saturating_add(2);
    let [list, layers, feed] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Length(layers_height),
        Constraint::Min(3),
    ])
    .areas(body);
    render_list(frame, state, selected, list, p);
    let Some(s) = detail else { return };
    let heading = format!(
        " {} · {} · pid {} ",
        short_id(&s.row.id),
        s.row.workspace.display(),
        s.row.pid
    );
    frame.render_widget(
        Paragraph::new(layer_lines).block(Block::default().borders(Borders::ALL).title(heading)),
        layers,
    );
    render_feed(frame, s, state.now_ms, feed, p);
}

/// Below this width the list leaves out memory and processes, so the command still shows.
const NARROW: u16 = 80;

fn render_list(frame: &mut Frame, state: &TopState, selected: Option<usize>, area: Rect, p: Palette) {
    let wide = area.width >= NARROW;
    // (header, width, shown when narrow)
    let columns = [
        ("ID", Constraint::Length(8), true),
        ("PROJECT", Constraint::Length(12), true),
        ("PROFILE", Constraint::Length(8), true),
        ("UPTIME", Constraint::Length(7), true),
        ("CPU", Constraint::Length(5), false),
        ("MEM", Constraint::Length(6), false),
        ("PROCS", Constraint::Length(5), false),
        ("ALLOW/DENY", Constraint::Length(10), true),
        ("COMMAND", Constraint::Fill(1), true),
    ];
    let shown = |i: usize| wide || columns[i].2;
    let header = Row::new(
        columns
            .iter()
            .enumerate()
            .filter(|(i, _)| shown(*i))
            .map(|(_, c)| c.0),
    )
    .style(p.bold());
    let rows = state.sessions.iter().map(|s| {
        let r = &s.row;
        let mut command = Vec::new();
        if !r.degraded.is_empty() {
            command.push(Span::styled(
                format!("[degraded: {}] ", r.degraded.join(" ")),
                p.fg(Color::Yellow),
            ));
        }
        command.push(Span::raw(corral_core::render::shell_words(&r.command)));
        let denied = if r.net_denied > 0 {
            p.fg(Color::Red)
        } else {
            Style::default()
        };
        let cells = [
            Cell::from(short_id(&r.id).to_string()),
            Cell::from(project(r)),
            Cell::from(
                r.agent
                    .clone()
                    .or_else(|| r.profile.clone())
                    .unwrap_or_else(|| "?".into()),
            ),
            Cell::from(r.uptime_s.map_or("-".into(), duration)),
            Cell::from(s.cpu_percent.map_or("-".into(), |c| format!("{c}%"))),
            Cell::from(
                r.memory_bytes
                    .map_or("-".into(), |b| format!("{}M", b / (1024 * 1024))),
            ),
            Cell::from(r.processes.map_or("-".into(), |n| n.to_string())),
            Cell::from(Line::from(vec![
                Span::raw(format!("{}/", r.net_allowed)),
                Span::styled(r.net_denied.to_string(), denied),
            ])),
            Cell::from(Line::from(command)),
        ];
        Row::new(
            cells
                .into_iter()
                .enumerate()
                .filter(|(i, _)| shown(*i))
                .map(|(_, c)| c),
        )
    });
    let widths: Vec<Constraint> = columns
        .iter()
        .enumerate()
        .filter(|(i, _)| shown(*i))
        .map(|(_, c)| c.1)
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(" sessions "))
        .row_highlight_style(p.style(Style::default().add_modifier(Modifier::REVERSED)))
        .highlight_symbol(">");
    let mut ts = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut ts);
}

/// The layers as `name level:achieved` items, packed into lines of `width`.
fn layer_lines(layers: &[LayerReport], width: u16, p: Palette) -> Vec<Line<'static>> {
    if layers.is_empty() {
        return vec![Line::from("layers: not recorded yet")];
    }
    let width = usize::from(width.max(1));
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for l in layers {
        let style = match (l.achieved, l.level) {
            (Achieved::Full, _) => p.fg(Color::Green),
            (Achieved::Partial, _) => p.fg(Color::Yellow),
            (Achieved::None, Level::BestEffort) => p.fg(Color::Yellow),
            (Achieved::None, Level::Required) => {
                p.style(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD))
            }
        };
        let name = format!("{} {}:", l.layer, level_name(l.level));
        let achieved = l.achieved.to_string();
        let len = name.chars().count() + achieved.chars().count();
        let gap = if line.is_empty() { 0 } else { 2 };
        if used > 0 && used + gap + len > width {
            lines.push(Line::from(std::mem::take(&mut line)));
            used = 0;
        } else if gap > 0 {
            line.push(Span::raw("  "));
            used += gap;
        }
        line.push(Span::raw(name));
        line.push(Span::styled(achieved, style));
        used += len;
    }
    if !line.is_empty() {
        lines.push(Line::from(line));
    }
    lines
}

/// One event as a line: age, kind, what.
fn feed_line(item: &FeedItem, now_ms: u64, p: Palette) -> Line<'static> {
    let age = format!("{:>6} ", duration(now_ms.saturating_sub(item.time_ms) / 1000));
    let (kind, kind_style, what) = match &item.activity {
        Activity::Net {
            verdict,
            proto,
            host,
            port,
            reason,
        } => {
            let (word, style) = match verdict {
                Verdict::Allowed => ("allowed", p.fg(Color::Green)),
                Verdict::Denied => (
                    "DENIED ",
                    p.style(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)),
                ),
            };
            (
                format!("net {word}"),
                style,
                format!("{host}:{port} ({proto}, {reason})"),
            )
        }
        Activity::SyscallDenied {
            pid,
            program,
            syscall,
        } => (
            "syscall DENIED".to_string(),
            p.style(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)),
            format!("{syscall} by {program} (pid {pid})"),
        ),
        Activity::Api {
            method,
            path,
            status,
            error,
        } => (
            "api".to_string(),
            p.fg(Color::Cyan),
            format!(
                "{method} {path} → {}{}",
                status.map_or("no answer".to_string(), |s| s.to_string()),
                error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ),
        Activity::LimitHit { message } => ("limit".to_string(), p.fg(Color::Yellow), message.clone()),
        Activity::Exec { pid, path, argv } => (
            "exec".to_string(),
            p.fg(Color::Blue),
            format!(
                "{} (pid {pid})",
                if argv.is_empty() {
                    path.clone()
                } else {
                    corral_core::render::shell_words(argv)
                }
            ),
        ),
    };
    Line::from(vec![
        Span::styled(age, p.fg(Color::DarkGray)),
        Span::styled(format!("{kind:<14} "), kind_style),
        Span::raw(what),
    ])
}

fn render_feed(frame: &mut Frame, s: &SessionView, now_ms: u64, area: Rect, p: Palette) {
    let block = Block::default().borders(Borders::ALL).title(format!(
        " events · net {} allowed, {} denied ",
        s.row.net_allowed, s.row.net_denied
    ));
    // Newest last: the tail that fits.
    let room = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line> = if s.feed.is_empty() {
        vec![Line::from("no events yet")]
    } else {
        let skip = s.feed.len().saturating_sub(room);
        s.feed[skip..].iter().map(|i| feed_line(i, now_ms, p)).collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Gives the terminal back: raw mode off, the main screen, the cursor shown. Safe to call twice.
fn leave_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Gives the terminal back when dropped (return and error paths).
#[derive(Debug)]
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        leave_terminal();
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The sessions now, each log read on from where the last refresh stopped.
fn refresh(
    runtime_root: &Path,
    logs: &[PathBuf],
    followers: &mut HashMap<String, LogFollower>,
    cpu_seen: &mut HashMap<String, (u64, u64)>,
    color: bool,
) -> TopState {
    let live = session::live_sessions(runtime_root);
    followers.retain(|id, _| live.iter().any(|s| &s.id == id));
    cpu_seen.retain(|id, _| live.iter().any(|s| &s.id == id));
    let now = now_ms();
    let mut sessions = Vec::new();
    for s in &live {
        if !followers.contains_key(&s.id) {
            // No log yet (the session is starting): look again at the next refresh.
            if let Some(path) = sessionlog::find_log(logs, &s.id) {
                followers.insert(s.id.clone(), LogFollower::new(path));
            }
        }
        let empty = SessionLog::default();
        let log = match followers.get_mut(&s.id) {
            Some(f) => {
                f.poll();
                &f.log
            }
            None => &empty,
        };
        let mut view = SessionView::new(cmd_ps::row_from(s, log), log);
        if let Some(cpu) = view.row.cpu_ms {
            if let Some(before) = cpu_seen.insert(s.id.clone(), (now, cpu)) {
                view.cpu_percent = cpu_percent(before, (now, cpu));
            }
        }
        sessions.push(view);
    }
    TopState {
        sessions,
        now_ms: now_ms(),
        color,
        notice: None,
    }
}

/// `corral top`.
pub fn top(runtime_root: &Path, logs: &[PathBuf]) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        eprintln!("{NOT_A_TERMINAL}");
        return Ok(1);
    }
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // A signal sets the flag; the loop then returns and the guard gives the terminal back.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGQUIT,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // The hook first: a panic from here on leaves a usable terminal before its message prints.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave_terminal();
        previous(info);
    }));
    // The guard before raw mode: a failure halfway through entering is undone too.
    let _guard = TerminalGuard;
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        crossterm::cursor::Hide
    )?;
    let mut terminal = ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;

    let mut followers = HashMap::new();
    let mut cpu_seen = HashMap::new();
    let mut selection = Selection::default();
    let mut notice: Option<String> = None;
    let mut state = TopState::default();
    let mut next_refresh = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_refresh {
            state = refresh(runtime_root, logs, &mut followers, &mut cpu_seen, color);
            next_refresh = Instant::now() + REFRESH;
        }
        state.notice.clone_from(&notice);
        let ids: Vec<&str> = state.sessions.iter().map(|s| s.row.id.as_str()).collect();
        let selected = selection.index(&ids);
        terminal.draw(|f| render(f, &state, selected))?;
        if !event::poll(next_refresh.saturating_duration_since(Instant::now()))? {
            continue;
        }
        let event::Event::Key(key) = event::read()? else {
            // A resize (or anything else): drawn again at the top of the loop.
            continue;
        };
        match action(&key) {
            Action::Quit => break,
            Action::Up => selection.step(&ids, true),
            Action::Down => selection.step(&ids, false),
            Action::Kill => {
                let Some(s) = selected.and_then(|i| state.sessions.get(i)) else {
                    continue;
                };
                notice = Some(match crate::run::kill(&s.row.id, false) {
                    Ok(_) => format!("sent SIGTERM to session {} (pid {})", s.row.id, s.row.pid),
                    Err(e) => format!("kill {}: {e:#}", short_id(&s.row.id)),
                });
                // `kill` reports on stdout, over the dashboard: draw everything again.
                terminal.clear()?;
                next_refresh = Instant::now();
            }
            Action::None => {}
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use corral_core::layer::Layer;
    use pretty_assertions::assert_eq;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    const NOW: u64 = 1_700_000_000_000;

    fn layer(layer: Layer, level: Level, achieved: Achieved) -> LayerReport {
        LayerReport {
            layer,
            level,
            achieved,
            detail: String::new(),
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time_between_two_looks() {
        assert_eq!(cpu_percent((1_000, 500), (3_000, 1_500)), Some(50));
        assert_eq!(
            cpu_percent((1_000, 500), (2_000, 2_500)),
            Some(200),
            "two cores busy"
        );
        assert_eq!(cpu_percent((1_000, 500), (1_000, 600)), None, "no time passed");
        assert_eq!(
            cpu_percent((1_000, 500), (2_000, 400)),
            None,
            "a counter that went back"
        );
        assert_eq!(crate::cmd_ps::cpu_time(12_345), "12.3s");
        assert_eq!(crate::cmd_ps::cpu_time(245_000), "4m05s");
    }

    fn item(ago_s: u64, activity: Activity) -> FeedItem {
        FeedItem {
            time_ms: NOW - ago_s * 1000,
            activity,
        }
    }

    fn two_sessions(color: bool) -> TopState {
        let claude = SessionView {
            row: SessionRow {
                id: "3f9a1c0d5e7b2a41".into(),
                pid: 4242,
                workspace: PathBuf::from("/home/ada/src/webshop"),
                uptime_s: Some(3725),
                profile: Some("claude".into()),
                agent: Some("claude".into()),
                command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
                degraded: vec!["cgroup=none".into()],
                memory_bytes: Some(512 * 1024 * 1024),
                processes: Some(14),
                cpu_ms: Some(81_250),
                net_allowed: 37,
                net_denied: 2,
            },
            layers: vec![
                layer(Layer::Userns, Level::Required, Achieved::Full),
                layer(Layer::Mountns, Level::Required, Achieved::Full),
                layer(Layer::Pidns, Level::Required, Achieved::Full),
                layer(Layer::Netns, Level::Required, Achieved::Full),
                layer(Layer::Landlock, Level::Required, Achieved::Full),
                layer(Layer::Seccomp, Level::Required, Achieved::Full),
                layer(Layer::Cgroup, Level::BestEffort, Achieved::None),
            ],
            feed: vec![
                item(
                    42,
                    Activity::Exec {
                        pid: 4250,
                        path: "/usr/bin/git".into(),
                        argv: vec!["git".into(), "status".into()],
                    },
                ),
                item(
                    30,
                    Activity::Net {
                        verdict: Verdict::Allowed,
                        proto: "connect".into(),
                        host: "registry.npmjs.org".into(),
                        port: 443,
                        reason: "allowed".into(),
                    },
                ),
                item(
                    12,
                    Activity::Net {
                        verdict: Verdict::Denied,
                        proto: "connect".into(),
                        host: "pastebin.com".into(),
                        port: 443,
                        reason: "not_in_allowlist".into(),
                    },
                ),
                item(
                    3,
                    Activity::SyscallDenied {
                        pid: 4301,
                        program: "strace".into(),
                        syscall: "ptrace".into(),
                    },
                ),
            ],
            cpu_percent: Some(37),
        };
        let shell = SessionView {
            row: SessionRow {
                id: "a07c55e1b2d34f60".into(),
                pid: 5150,
                workspace: PathBuf::from("/home/ada/src/notes"),
                uptime_s: Some(48),
                profile: Some("default".into()),
                agent: None,
                command: vec!["bash".into()],
                degraded: vec![],
                memory_bytes: None,
                processes: None,
                cpu_ms: None,
                net_allowed: 0,
                net_denied: 0,
            },
            layers: vec![],
            feed: vec![],
            cpu_percent: None,
        };
        TopState {
            sessions: vec![claude, shell],
            now_ms: NOW,
            color,
            notice: None,
        }
    }

    fn draw(state: &TopState, selected: Option<usize>, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, state, selected)).unwrap();
        t
    }

    #[test]
    fn cmd_top_no_sessions() {
        let state = TopState {
            color: true,
            now_ms: NOW,
            ..TopState::default()
        };
        insta::assert_snapshot!("no_sessions_100x30", draw(&state, None, 100, 30).backend());
        insta::assert_snapshot!("no_sessions_60x20", draw(&state, None, 60, 20).backend());
    }

    #[test]
    fn cmd_top_two_sessions_first_selected() {
        let state = two_sessions(true);
        insta::assert_snapshot!("two_sessions_100x30", draw(&state, Some(0), 100, 30).backend());
        insta::assert_snapshot!("two_sessions_60x20", draw(&state, Some(0), 60, 20).backend());
    }

    #[test]
    fn cmd_top_second_selected_with_a_notice() {
        let mut state = two_sessions(true);
        state.notice = Some("sent SIGTERM to session a07c55e1b2d34f60 (pid 5150)".into());
        insta::assert_snapshot!("second_selected_100x30", draw(&state, Some(1), 100, 30).backend());
    }

    #[test]
    fn cmd_top_colours_mark_what_matters() {
        let t = draw(&two_sessions(true), Some(0), 100, 30);
        let buf = t.backend().buffer();
        let plain = ratatui::buffer::Cell::default().style();
        let styled = buf.content().iter().filter(|c| c.style() != plain).count();
        assert!(styled > 0, "colours are on without NO_COLOR");
        // The denied connection's word is red.
        let row = (0..30)
            .find(|y| {
                (0..100)
                    .map(|x| buf[(x, *y)].symbol())
                    .collect::<String>()
                    .contains("pastebin")
            })
            .unwrap();
        let x = (0..100).find(|x| buf[(*x, row)].symbol() == "D").unwrap();
        assert_eq!(buf[(x, row)].fg, Color::Red);
    }

    #[test]
    fn cmd_top_no_color_means_no_style_at_all() {
        let state = two_sessions(false);
        let t = draw(&state, Some(0), 100, 30);
        let plain = ratatui::buffer::Cell::default().style();
        let styled: Vec<(u16, u16)> = t
            .backend()
            .buffer()
            .content()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.style() != plain)
            .map(|(i, _)| (u16::try_from(i % 100).unwrap(), u16::try_from(i / 100).unwrap()))
            .collect();
        assert_eq!(styled, Vec::<(u16, u16)>::new());
        // Same text as with colours: the selection shows by its `>`.
        insta::assert_snapshot!("no_color_100x30", t.backend());
        assert_eq!(
            t.backend().to_string(),
            draw(&two_sessions(true), Some(0), 100, 30).backend().to_string()
        );
    }

    #[test]
    fn cmd_top_keys() {
        let key = |code, modifiers| action(&KeyEvent::new(code, modifiers));
        let none = KeyModifiers::NONE;
        assert_eq!(
            [
                key(KeyCode::Up, none),
                key(KeyCode::Char('k'), none),
                key(KeyCode::Down, none),
                key(KeyCode::Char('j'), none),
                key(KeyCode::Char('K'), KeyModifiers::SHIFT),
                key(KeyCode::Char('q'), none),
                key(KeyCode::Esc, none),
                key(KeyCode::Char('c'), KeyModifiers::CONTROL),
                key(KeyCode::Char('c'), none),
                key(KeyCode::Char('x'), none),
            ],
            [
                Action::Up,
                Action::Up,
                Action::Down,
                Action::Down,
                Action::Kill,
                Action::Quit,
                Action::Quit,
                Action::Quit,
                Action::None,
                Action::None,
            ]
        );
    }

    #[test]
    fn cmd_top_selection_follows_the_session() {
        let mut s = Selection::default();
        assert_eq!(s.index(&[]), None);
        assert_eq!(s.index(&["a", "b", "c"]), Some(0));
        s.step(&["a", "b", "c"], false);
        s.step(&["a", "b", "c"], false);
        s.step(&["a", "b", "c"], false);
        assert_eq!(s.index(&["a", "b", "c"]), Some(2), "stays on the last");
        // A session before it ended: the selection stays on "c".
        assert_eq!(s.index(&["b", "c"]), Some(1));
        // "c" ended: the one now at its place, within the list.
        assert_eq!(s.index(&["b"]), Some(0));
        s.step(&["b"], true);
        assert_eq!(s.index(&["b"]), Some(0));
    }

    #[test]
    fn cmd_top_state_from_a_log() {
        let mut log = SessionLog::default();
        log.apply(sessionlog::LogEntry::Feed(item(
            1,
            Activity::LimitHit {
                message: "pids limit (64) reached".into(),
            },
        )));
        let row = two_sessions(true).sessions[1].row.clone();
        assert_eq!(
            SessionView::new(row.clone(), &log),
            SessionView {
                row,
                layers: vec![],
                feed: vec![item(
                    1,
                    Activity::LimitHit {
                        message: "pids limit (64) reached".into()
                    }
                )],
                cpu_percent: None,
            }
        );
    }

    #[test]
    fn cmd_top_durations() {
        assert_eq!(
            [0, 59, 60, 3599, 3600, 86399, 86400 * 3 + 7200].map(duration),
            ["0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "3d02h"].map(String::from)
        );
    }
}
