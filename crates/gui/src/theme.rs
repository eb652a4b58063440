//! The seed's look: a deep blue background, raised cards, cyan and purple
//! accents, and green/blue/yellow/red for the log.

use egui::{Color32, CornerRadius, Frame, Margin, Stroke, Visuals};

use crate::activity::Level;

/// Window background, `#0a0e27`.
pub const BG: Color32 = Color32::from_rgb(0x0a, 0x0e, 0x27);
/// Cards, `#1a1f3a`.
pub const CARD: Color32 = Color32::from_rgb(0x1a, 0x1f, 0x3a);
/// First accent, `#00d4ff`.
pub const CYAN: Color32 = Color32::from_rgb(0x00, 0xd4, 0xff);
/// Second accent, `#a855f7`.
pub const PURPLE: Color32 = Color32::from_rgb(0xa8, 0x55, 0xf7);
/// Success.
pub const GREEN: Color32 = Color32::from_rgb(0x22, 0xc5, 0x5e);
/// Information.
pub const BLUE: Color32 = Color32::from_rgb(0x60, 0xa5, 0xfa);
/// Warnings.
pub const YELLOW: Color32 = Color32::from_rgb(0xfa, 0xcc, 0x15);
/// Errors.
pub const RED: Color32 = Color32::from_rgb(0xef, 0x44, 0x44);
/// Secondary text.
pub const MUTED: Color32 = Color32::from_rgb(0x94, 0xa3, 0xb8);

/// The colour of a log level.
pub fn level_color(level: Level) -> Color32 {
    match level {
        Level::Success => GREEN,
        Level::Info => BLUE,
        Level::Warning => YELLOW,
        Level::Error => RED,
    }
}

/// Dark visuals in the seed's colours.
pub fn apply(ctx: &egui::Context) {
    let mut v = Visuals::dark();
    v.panel_fill = BG;
    v.window_fill = CARD;
    v.extreme_bg_color = Color32::from_rgb(0x0f, 0x14, 0x30);
    v.faint_bg_color = Color32::from_rgb(0x14, 0x19, 0x33);
    v.hyperlink_color = CYAN;
    v.selection.bg_fill = PURPLE.gamma_multiply(0.6);
    v.selection.stroke = Stroke::new(1.0, CYAN);
    v.window_stroke = Stroke::new(1.0, PURPLE.gamma_multiply(0.5));
    v.widgets.inactive.weak_bg_fill = Color32::from_rgb(0x25, 0x2b, 0x4d);
    v.widgets.inactive.bg_fill = Color32::from_rgb(0x25, 0x2b, 0x4d);
    v.widgets.hovered.weak_bg_fill = Color32::from_rgb(0x2f, 0x36, 0x60);
    v.widgets.hovered.bg_stroke = Stroke::new(1.0, CYAN);
    v.widgets.active.weak_bg_fill = PURPLE.gamma_multiply(0.7);
    ctx.set_visuals(v);
    ctx.global_style_mut(|s| {
        s.spacing.button_padding = egui::vec2(10.0, 6.0);
        s.spacing.item_spacing = egui::vec2(8.0, 8.0);
    });
}

/// A raised card.
pub fn card() -> Frame {
    Frame::new()
        .fill(CARD)
        .corner_radius(CornerRadius::same(10))
        .inner_margin(Margin::same(12))
}
