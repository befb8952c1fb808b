/* The published reports: the list of publications (/reports/) and one publication
   (/reports/{period}[?version=N]). Reads only /api/v1/reports…: a stored publication, never
   the live views. Vanilla JS, no build step. */
"use strict";

const GROUP_KEYS = ["transparency", "progress", "online_service", "payment", "digitization",
  "satisfaction"];
const BANDS = ["Xuất sắc", "Tốt", "Khá", "Trung bình", "Yếu"];
const STATUS = { finished: "Đã giải quyết", open: "Đang giải quyết",
  waiting_on_applicant: "Chờ bổ sung" };
const APOLOGY = { in_time: ["Đúng hạn", "ok"], late: ["Muộn", "warn"], missing: ["Không có", "bad"] };
const FILE_LABELS = { pdf: "PDF", xlsx: "Excel (XLSX)", csv: "CSV" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmt(n, digits) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("vi-VN", { minimumFractionDigits: digits,
    maximumFractionDigits: digits });
}

function periodVi(label) {
  const [year, rest] = label.split("-");
  if (!rest) return `Năm ${year}`;
  if (rest[0] === "Q") return `Quý ${rest.slice(1)}/${year}`;
  if (rest[0] === "H") return `6 tháng ${rest === "H1" ? "đầu" : "cuối"} năm ${year}`;
  return `Tháng ${Number(rest)}/${year}`;
}

function when(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh", dateStyle: "medium",
    timeStyle: "medium" }) + " (giờ Việt Nam)";
}

function badge(label) {
  const i = BANDS.indexOf(label);
  return el("span", { class: `badge band-${i < 0 ? 4 : i}` }, label);
}

function groupBar(groups, scores) {
  return el("div", { class: "gbar" }, groups.map((g) => {
    const score = scores[g.key] || 0;
    return el("span", { class: `seg g-${g.key}`, style: `flex-grow:${g.max}`,
      title: `${g.name}: ${fmt(score, 2)}/${g.max}` },
    el("span", { class: "fill", style: `width:${Math.min(100, 100 * score / g.max)}%` }));
  }));
}

async function getJson(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error || `HTTP ${r.status}`);
  return doc;
}

/* ----- the list ------------------------------------------------------------------------- */

async function showList() {
  const doc = await getJson("../api/v1/reports");
  const body = document.querySelector("#publications tbody");
  const latest = new Map();
  for (const p of doc.publications) if (!latest.has(p.period)) latest.set(p.period, p);
  for (const p of latest.values()) {
    body.append(el("tr", { "data-period": p.period },
      el("td", {}, el("a", { href: `./${p.period}` }, periodVi(p.period))),
      el("td", { class: "num" }, p.version),
      el("td", {}, when(p.recorded_at)),
      el("td", {}, p.ruleset),
      el("td", { class: "mono" }, p.sha256.slice(0, 16) + "…")));
  }
  document.getElementById("empty").hidden = latest.size > 0;
  document.body.setAttribute("data-ready", "1");
}

/* ----- one publication ------------------------------------------------------------------ */

function groupsOf(content) {
  const card = (content.scorecards || [])[0];
  if (!card) return GROUP_KEYS.map((k) => ({ key: k, name: k, max: 1 }));
  return card.groups.map((g) => ({ key: g.key, name: g.name_vi || g.key, max: g.max }));
}

function renderAbout(doc) {
  const c = doc.content;
  document.title = `${periodVi(doc.period)} · Kết quả công bố`;
  document.getElementById("title").textContent =
    `Chỉ số phục vụ người dân, doanh nghiệp · ${periodVi(doc.period)}`;
  document.getElementById("period").textContent = periodVi(doc.period);
  document.getElementById("version").textContent = `${doc.version}`;
  document.getElementById("recorded-at").textContent = when(doc.recorded_at);
  document.getElementById("recorded-at").setAttribute("data-value", doc.recorded_at);
  document.getElementById("view-end").textContent = when(c.view_end);
  document.getElementById("ruleset").textContent = doc.ruleset;
  document.getElementById("sha256").textContent = doc.sha256;
  document.getElementById("verify-period").textContent = doc.period;
  document.getElementById("verify-version").textContent = doc.version;
  const files = document.getElementById("files");
  for (const kind of ["pdf", "xlsx", "csv"]) {
    const f = doc.files.find((x) => x.kind === kind);
    if (!f) continue;
    files.append(el("a", { class: "file", href: f.url, download: f.name, "data-kind": kind,
      title: `SHA-256 ${f.sha256}` }, FILE_LABELS[kind], el("span", { class: "muted small" },
      ` ${fmt(f.size / 1024, 0)} KB`)));
  }
  const list = document.getElementById("versions");
  for (const v of doc.versions) {
    const label = `Phiên bản ${v.version} · ghi nhận đến ${when(v.recorded_at)}`;
    list.append(el("li", { "data-version": v.version }, v.version === doc.version
      ? el("strong", {}, label + " (đang xem)")
      : el("a", { href: `?version=${v.version}` }, label)));
  }
}

function renderRanking(content, groups) {
  const legend = document.getElementById("legend");
  for (const g of groups) {
    legend.append(el("span", { class: `legend-item g-${g.key}` }, el("span", { class: "swatch" }),
      `${g.name} (${g.max})`));
  }
  const body = document.querySelector("#ranking tbody");
  for (const r of content.ranking.ranking) {
    body.append(el("tr", { "data-agency": r.agency_id, class: r.parent_id ? null : "is-root" },
      el("td", { class: "num rank" }, r.rank),
      el("td", {}, el("div", { class: "aname" }, r.agency_name),
        el("div", { class: "muted small" }, r.agency_id)),
      el("td", { class: "num total", "data-testid": "total", "data-value": r.total },
        fmt(r.total, 2)),
      el("td", { class: "band-col" }, badge(r.classification)),
      el("td", { class: "groups-col" }, groupBar(groups, r.groups))));
  }
}

function renderAuthorities(content) {
  const box = document.getElementById("authorities");
  const cards = new Map(content.scorecards.map((c) => [c.agency_id, c]));
  for (const r of content.ranking.ranking.filter((x) => !x.parent_id)) {
    const card = cards.get(r.agency_id);
    box.append(el("div", { class: "card-head" }, el("h2", {},
      `Điểm theo nhóm: ${card.agency_name || card.agency_id}`), el("div", {},
      el("span", { class: "big-inline" }, fmt(card.total, 2)), el("span", { class: "of" }, "/100 "),
      badge(card.classification))));
    box.append(el("div", { class: "authority-groups" }, card.groups.map((g) =>
      el("div", { class: `gcard g-${g.key}` }, el("div", { class: "gname" }, g.name_vi || g.key),
        el("div", { class: "gscore" }, el("strong", {}, fmt(g.score, 2)), ` / ${g.max}`),
        el("div", { class: "meter" }, el("span", { style:
          `width:${Math.min(100, 100 * g.score / g.max)}%` }))))));
  }
}

function apologyOf(d) {
  return d.apology_in_time ? "in_time" : d.apology_issued ? "late" : "missing";
}

function renderLate(content) {
  const rows = (content.late_dossiers || []).flatMap((doc) => doc.dossiers);
  document.getElementById("late-count").textContent = `(${rows.length})`;
  document.getElementById("late-empty").hidden = rows.length > 0;
  const body = document.querySelector("#late tbody");
  for (const d of rows) {
    const [label, cls] = APOLOGY[apologyOf(d)];
    body.append(el("tr", { "data-dossier": d.dossier_id },
      el("td", { class: "mono" }, d.dossier_id),
      el("td", {}, d.agency_name || d.agency_id),
      el("td", {}, d.procedure_name || d.procedure_id),
      el("td", { class: "num" }, d.due_date),
      el("td", {}, STATUS[d.status] || d.status),
      el("td", { class: "num" }, d.end_date || "–"),
      el("td", { class: "num" }, d.days_late),
      el("td", {}, el("span", { class: `pill ${cls}` }, label))));
  }
}

function renderDelays(content) {
  const box = document.getElementById("delays-body");
  if (!("delays" in content)) {
    box.append(el("p", { class: "empty" }, "Bản công bố này không có danh sách chậm trễ."));
    return;
  }
  for (const doc of content.delays) {
    const title = doc.by === "official" ? "Theo cán bộ" : "Theo đơn vị";
    box.append(el("h3", {}, `${title} · danh sách của ${doc.agency_id} · ${doc.late_dossiers} hồ sơ trễ`));
    const head = ["Đơn vị", "Cán bộ", "Hồ sơ trễ", "Bước trễ", "Số giờ vượt", "Xin lỗi đúng hạn",
      "Xin lỗi muộn", "Không xin lỗi"];
    const table = el("table", { class: "table delays", "data-by": doc.by },
      el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i > 1 ? "num" : null }, h)))),
      el("tbody", {}, doc.rows.map((r) => el("tr", {},
        el("td", {}, r.unit), el("td", {}, r.official || "–"),
        el("td", { class: "num" }, r.late_dossiers), el("td", { class: "num" }, r.late_steps),
        el("td", { class: "num" }, fmt(r.overrun_hours, 2)),
        el("td", { class: "num" }, r.apology_in_time), el("td", { class: "num" }, r.apology_late),
        el("td", { class: "num" }, r.apology_missing)))));
    box.append(el("div", { class: "table-wrap" }, table));
    if (!doc.rows.length) box.append(el("p", { class: "empty" }, "Không có hồ sơ trễ hạn."));
  }
}

function renderScorecards(content) {
  const box = document.getElementById("scorecards");
  for (const card of content.scorecards) {
    const rows = card.groups.flatMap((g) => [
      el("tr", { class: "group" }, el("td", { colspan: 4 }, g.name_vi || g.key),
        el("td", { class: "num" }, `${fmt(g.score, 2)} / ${g.max}`)),
      ...g.criteria.map((c) => el("tr", { "data-code": c.code },
        el("td", {}, `${c.id} ${c.name_vi || c.code}`),
        el("td", { class: "num" }, fmt(c.numerator, 0)),
        el("td", { class: "num" }, fmt(c.denominator, 0)),
        el("td", { class: "num" }, c.ratio === null ? "–" : fmt(c.ratio * 100, 2) + "%"),
        el("td", { class: "num" }, `${fmt(c.points, 2)} / ${c.max}`)))]);
    box.append(el("details", { class: "scorecard", "data-agency": card.agency_id },
      el("summary", {}, `${card.agency_name || card.agency_id} (${card.agency_id}) · `,
        el("strong", {}, fmt(card.total, 2)), " điểm · ", card.classification),
      el("div", { class: "table-wrap" }, el("table", { class: "table criteria" },
        el("thead", {}, el("tr", {}, el("th", {}, "Tiêu chí"), el("th", { class: "num" }, "Tử số"),
          el("th", { class: "num" }, "Mẫu số"), el("th", { class: "num" }, "Tỷ lệ"),
          el("th", { class: "num" }, "Điểm"))),
        el("tbody", {}, rows)))));
  }
}

async function showReport() {
  const period = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
  const version = new URLSearchParams(location.search).get("version");
  const query = version ? `?version=${encodeURIComponent(version)}` : "";
  const doc = await getJson(`../api/v1/reports/${encodeURIComponent(period)}${query}`);
  const content = doc.content;
  const groups = groupsOf(content);
  const roots = content.ranking.ranking.filter((r) => !r.parent_id);
  if (roots.length === 1) document.getElementById("authority").textContent = roots[0].agency_name;
  renderAbout(doc);
  renderRanking(content, groups);
  renderAuthorities(content);
  renderLate(content);
  renderDelays(content);
  renderScorecards(content);
  document.getElementById("print").addEventListener("click", () => window.print());
  // A printed report shows every scorecard: open them for the print, close them after.
  let opened = [];
  window.addEventListener("beforeprint", () => {
    opened = [...document.querySelectorAll("details.scorecard:not([open])")];
    for (const d of opened) d.open = true;
  });
  window.addEventListener("afterprint", () => { for (const d of opened) d.open = false; });
  document.body.setAttribute("data-ready", "1");
}

async function main() {
  try {
    if (document.body.dataset.page === "list") await showList();
    else await showReport();
  } catch (e) {
    document.querySelector("main").prepend(el("p", { class: "card error", role: "alert" },
      `Không tải được bản công bố: ${e.message}`));
    document.body.setAttribute("data-ready", "error");
  }
}

main();
