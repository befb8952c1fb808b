/* The public scoreboard: ranking, group bars, per-criterion detail, trend and late dossiers.
   Vanilla JS, no build step, no network beyond this server's /api/v1. */
"use strict";

const I18N = {
  vi: {
    title: "Chỉ số phục vụ người dân, doanh nghiệp",
    provinceTotal: "Điểm toàn tỉnh", ministryTotal: "Điểm toàn bộ, ngành",
    ranking: "Xếp hạng cơ quan, đơn vị",
    rank: "Hạng", agency: "Cơ quan, đơn vị", total: "Tổng điểm", classification: "Xếp loại",
    groups: "Điểm theo nhóm", noAgencies: "Chưa có dữ liệu.",
    trend: "Diễn biến theo tháng", criteria: "Điểm theo tiêu chí", criterion: "Tiêu chí",
    ratio: "Tỷ lệ", target: "Mục tiêu", points: "Điểm", lost: "Mất",
    late: "Hồ sơ trễ hạn", dossier: "Mã hồ sơ", procedure: "Thủ tục", due: "Hạn trả",
    daysLate: "Số ngày trễ", apology: "Xin lỗi", noLate: "Không có hồ sơ trễ hạn trong kỳ.",
    more: (n) => `và ${n} hồ sơ khác (xem API).`,
    lateCount: (n) => `(${n})`,
    source: "Theo Quyết định 766/QĐ-TTg · Bộ tiêu chí ",
    year: "Năm", period: "Kỳ",
    periods: { Y: "Cả năm", H1: "6 tháng đầu năm", H2: "6 tháng cuối năm", Q: "Quý", M: "Tháng" },
    quarterNames: ["I", "II", "III", "IV"],
    all: "Tất cả",
    levels: { ministry: "Bộ, ngành", province: "Tỉnh", department: "Sở, ban, ngành",
              district: "Cấp huyện", commune: "Cấp xã" },
    levelsOne: { ministry: "Bộ, ngành", province: "Cấp tỉnh", department: "Sở, ban, ngành",
                 district: "Cấp huyện", commune: "Cấp xã" },
    bands: { "Xuất sắc": "Xuất sắc", "Tốt": "Tốt", "Khá": "Khá", "Trung bình": "Trung bình",
             "Yếu": "Yếu" },
    apologyInTime: "Đã xin lỗi", apologyLate: "Xin lỗi muộn", apologyNone: "Chưa xin lỗi",
    open: "đang giải quyết", waiting: "chờ bổ sung", finished: "đã trả",
    live: "Trực tiếp", polling: "Cập nhật 3 giây/lần", connecting: "Đang kết nối…",
    updated: (t) => `Cập nhật lúc ${t}`,
    viewEnd: (t) => `Số liệu đến ${t}`,
    days: "ngày",
    shown: "chỉ hiển thị",
    zeroFull: "chưa phát sinh: tính đủ điểm", zeroNone: "chưa phát sinh: 0 điểm",
    avgDays: (d, n) => `trung bình ${d} ngày làm việc trên ${n} hồ sơ đã giải quyết`,
    error: "Không tải được dữ liệu",
    delays: "Đơn vị làm chậm hồ sơ", unit: "Đơn vị", lateDossiers: "Hồ sơ trễ",
    lateSteps: "Bước trễ", overrun: "Giờ vượt", apologies: "Xin lỗi: đúng hạn · muộn · chưa",
    noDelays: "Không đơn vị nào làm chậm hồ sơ trong kỳ này.",
    sheet: "Phiếu kiểm soát quá trình giải quyết hồ sơ", step: "Bước", holder: "Người giữ",
    start: "Bắt đầu", end: "Kết thúc", result: "Kết quả",
    results: { on_time: "đúng hạn", late: "trễ", open: "đang xử lý", no_due: "không có hạn" },
    hours: (h) => `${h} giờ`, openStep: "đang xử lý", close: "Đóng",
    atRisk: "Hồ sơ sắp đến hạn", stakeUnit: "Điểm đơn vị mất", stake: "Điểm mất",
    noAtRisk: "Không có hồ sơ sắp đến hạn hoặc đã quá hạn.",
    dueSoon: (n, w) => `${n} hồ sơ đến hạn trong ${w} ngày làm việc`,
    overdueOpen: (n) => `${n} hồ sơ đã quá hạn chưa trả`, pastDue: "quá hạn",
    apologyYes: "Đã xin lỗi",
  },
  en: {
    title: "Citizen and business service index",
    provinceTotal: "Province total", ministryTotal: "Ministry total",
    ranking: "Agency ranking",
    rank: "Rank", agency: "Agency", total: "Total", classification: "Rating",
    groups: "Points by group", noAgencies: "No data yet.",
    trend: "Month by month", criteria: "Points by criterion", criterion: "Criterion",
    ratio: "Ratio", target: "Target", points: "Points", lost: "Lost",
    late: "Late dossiers", dossier: "Dossier", procedure: "Procedure", due: "Due",
    daysLate: "Days late", apology: "Apology", noLate: "No late dossiers in this period.",
    more: (n) => `and ${n} more (see the API).`,
    lateCount: (n) => `(${n})`,
    source: "Decision 766/QĐ-TTg · ruleset ",
    year: "Year", period: "Period",
    periods: { Y: "Whole year", H1: "First half", H2: "Second half", Q: "Quarter", M: "Month" },
    quarterNames: ["1", "2", "3", "4"],
    all: "All",
    levels: { ministry: "Ministries", province: "Province", department: "Departments",
              district: "Districts", commune: "Communes" },
    levelsOne: { ministry: "Ministry", province: "Province", department: "Department",
                 district: "District", commune: "Commune" },
    bands: { "Xuất sắc": "Excellent", "Tốt": "Good", "Khá": "Fair", "Trung bình": "Average",
             "Yếu": "Weak" },
    apologyInTime: "Apologized", apologyLate: "Apologized late", apologyNone: "No apology",
    open: "open", waiting: "awaiting applicant", finished: "returned",
    live: "Live", polling: "Refreshing every 3 s", connecting: "Connecting…",
    updated: (t) => `Updated ${t}`,
    viewEnd: (t) => `Data up to ${t}`,
    days: "days",
    shown: "shown only",
    zeroFull: "nothing to count: full points", zeroNone: "nothing to count: 0 points",
    avgDays: (d, n) => `${d} working days on average over ${n} finished dossiers`,
    error: "Could not load the data",
    delays: "Who made dossiers late", unit: "Unit", lateDossiers: "Late dossiers",
    lateSteps: "Late steps", overrun: "Hours over", apologies: "Apology: in time · late · none",
    noDelays: "No unit made a dossier late in this period.",
    sheet: "Control sheet", step: "Step", holder: "Holder",
    start: "Start", end: "End", result: "Result",
    results: { on_time: "on time", late: "late", open: "in progress", no_due: "no due time" },
    hours: (h) => `${h} h`, openStep: "in progress", close: "Close",
    atRisk: "Falling due", stakeUnit: "Unit loses", stake: "Loses",
    noAtRisk: "No dossier falling due or open past due.",
    dueSoon: (n, w) => `${n} due within ${w} working days`,
    overdueOpen: (n) => `${n} open past due`, pastDue: "past due",
    apologyYes: "Apologized",
  },
};

const LOCALES = { vi: "vi-VN", en: "en-GB" };
const LATE_SHOWN = 100;
const params = new URLSearchParams(location.search);
const state = {
  lang: params.get("lang") === "en" ? "en" : "vi",
  year: null,
  part: "Y",           // Y, H1, H2, Q1..Q4, 01..12
  level: params.get("level") || "",
  agency: params.get("agency") || null,
  now: params.get("now") || null,   // a fixed "now" for reproducible views
  ruleset: null,
  agencies: [],
  provinceId: null,
  version: null,
  ranking: null,
  card: null, overdue: null, trend: null, delays: null, atRisk: null,
};
const AT_RISK_WITHIN = 2;

const $ = (sel) => document.querySelector(sel);
const t = (key) => I18N[state.lang][key];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ----- formatting --------------------------------------------------------------------------

function fmt(n, digits) {
  return new Intl.NumberFormat(LOCALES[state.lang], {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(n);
}
const score = (n) => fmt(n, 2);
const count = (n) => fmt(n, 0);
const pct = (r) => (r === null || r === undefined ? "–" : fmt(r * 100, 2) + "%");
function date(iso) {
  const [y, m, d] = iso.slice(0, 10).split("-");
  return `${d}/${m}/${y}`;
}
function dateTime(iso) {
  // The API writes Vietnam time (+07:00): show it as written, whatever the viewer's zone.
  const [d, time] = iso.split("T");
  return `${time.slice(0, 5)}, ${date(d)}`;
}
function name(obj) { return state.lang === "en" ? (obj.name_en || obj.name_vi) : obj.name_vi; }
function bandIndex(label) {
  const bands = state.ruleset ? state.ruleset.bands : [];
  const i = bands.findIndex((b) => b.label === label);
  return i < 0 ? bands.length - 1 : i;
}
function badge(label) {
  return el("span", { class: `badge band-${bandIndex(label)}`, "data-testid": "classification" },
    t("bands")[label] || label);
}
function levelName(level) { return t("levelsOne")[level] || level || ""; }

// ----- data --------------------------------------------------------------------------------

async function api(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v) q.set(k, v);
  if (state.now) q.set("now", state.now);
  const url = "api/v1/" + path + (q.toString() ? "?" + q : "");
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function periodLabel() {
  if (state.year === null) return null;
  return state.part === "Y" ? String(state.year) : `${state.year}-${state.part}`;
}

async function loadAll() {
  const period = periodLabel();
  const [ranking, agencies] = await Promise.all([
    api("ranking", { period, level: state.level }),
    api("agencies"),
  ]);
  state.agencies = agencies.agencies;
  const roots = agencies.agencies.filter((a) => a.parent_id === null);
  const top = roots.find((a) => a.level === "province" || a.level === "ministry") || roots[0];
  state.provinceId = top ? top.agency_id : null;
  if (state.year === null) state.year = Number(ranking.period.slice(0, 4));
  state.ranking = ranking;
  state.province = state.provinceId
    ? await api(`agencies/${encodeURIComponent(state.provinceId)}/scorecard`, { period: ranking.period })
    : null;
  const risky = state.agency || state.provinceId;
  state.atRisk = risky
    ? await api(`agencies/${encodeURIComponent(risky)}/at-risk`, { within: String(AT_RISK_WITHIN) })
    : null;
  if (state.agency) await loadDetail();
}

async function loadDetail() {
  const id = encodeURIComponent(state.agency);
  const period = state.ranking.period;
  const [card, overdue, trend, delays] = await Promise.all([
    api(`agencies/${id}/scorecard`, { period }),
    api(`agencies/${id}/overdue`, { period }),
    api(`agencies/${id}/trend`, { year: String(state.year) }),
    api(`agencies/${id}/delays`, { period }),
  ]);
  state.card = card; state.overdue = overdue; state.trend = trend; state.delays = delays;
}

// ----- rendering ---------------------------------------------------------------------------

function renderStatic() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    const v = t(node.dataset.i18n);
    if (typeof v === "string") node.textContent = v;
  }
  $("[data-i18n=source]").textContent = t("source") + (state.ruleset ? state.ruleset.name : "");
  document.title = t("title");
  $("#lang-toggle").textContent = state.lang === "vi" ? "EN" : "VI";
  $("#lang-toggle").setAttribute("aria-label", state.lang === "vi" ? "English" : "Tiếng Việt");
  renderPeriodSelectors();
  renderLegend();
}

// Today in Vietnam (UTC+7 all year) at the page's now: the `now` it was opened with, else the clock.
function vnToday() {
  const d = new Date((state.now ? Date.parse(state.now) : Date.now()) + 7 * 3600e3);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1 };
}

// Whether a part of the chosen year (Y, H1, H2, Q1–Q4, 01–12) has begun by today. One that has
// not holds no dossier yet: its view is empty (E = min(now, end)) and would score as "Yếu".
function begun(part) {
  const today = vnToday();
  if (state.year !== today.year) return state.year < today.year;
  const first = part === "Y" || part === "H1" ? 1 : part === "H2" ? 7
    : part[0] === "Q" ? 3 * Number(part[1]) - 2 : Number(part);
  return first <= today.month;
}

function renderPeriodSelectors() {
  const years = $("#year");
  years.replaceChildren();
  const thisYear = vnToday().year;
  const last = Math.max(state.year || thisYear, thisYear);
  for (let y = last; y >= last - 3; y--) years.append(el("option", { value: y }, y));
  years.value = String(state.year);
  const p = t("periods");
  const sel = $("#period");
  const option = (value, label) => el("option", { value, disabled: !begun(value) }, label);
  sel.replaceChildren(
    option("Y", p.Y),
    el("optgroup", { label: p.Y === "Cả năm" ? "6 tháng" : "Half-year" },
      option("H1", p.H1), option("H2", p.H2)),
    el("optgroup", { label: p.Q },
      [1, 2, 3, 4].map((q) => option(`Q${q}`, `${p.Q} ${t("quarterNames")[q - 1]}`))),
    el("optgroup", { label: p.M },
      Array.from({ length: 12 }, (_, i) => option(String(i + 1).padStart(2, "0"), `${p.M} ${i + 1}`))),
  );
  sel.value = state.part;
}

function renderLegend() {
  const legend = $("#legend");
  legend.replaceChildren();
  if (!state.ruleset) return;
  for (const g of state.ruleset.groups) {
    legend.append(el("span", { class: "legend-item" },
      el("span", { class: `swatch g-${g.key}` }), `${name(g)} (${fmt(g.max, 0)})`));
  }
}

function groupBar(groups, compact) {
  // One 100-point bar: a segment per group as wide as its maximum, filled by its score.
  const bar = el("div", { class: "gbar" + (compact ? " compact" : ""), role: "img" });
  const parts = [];
  for (const g of state.ruleset.groups) {
    const s = groups[g.key] ?? 0;
    const fill = g.max > 0 ? Math.max(0, Math.min(1, s / g.max)) : 0;
    const label = `${name(g)}: ${score(s)} / ${fmt(g.max, 0)}`;
    parts.push(label);
    bar.append(el("span", { class: `seg g-${g.key}`, style: `flex-grow:${g.max}`, title: label },
      el("span", { class: "fill", style: `width:${(fill * 100).toFixed(2)}%` })));
  }
  bar.setAttribute("aria-label", parts.join("; "));
  return bar;
}

function renderSummary() {
  const card = state.province;
  const box = $("#summary-groups");
  box.replaceChildren();
  if (!card) { $("#summary").hidden = true; return; }
  $("#summary").hidden = false;
  const root = state.agencies.find((a) => a.agency_id === state.provinceId);
  $("#province").textContent = root ? root.name : "";
  $("#summary-label").textContent = root && root.level === "ministry" ? t("ministryTotal") : t("provinceTotal");
  setNumber($("#summary-total"), card.total);
  $("#summary-badge").replaceChildren(badge(card.classification));
  $("#summary-meta").textContent = t("viewEnd")(dateTime(card.view_end));
  for (const g of card.groups) {
    const fill = g.max > 0 ? Math.min(1, g.score / g.max) : 0;
    box.append(el("div", { class: `gcard g-${g.key}`, "data-group": g.key },
      el("div", { class: "gname" }, name(g)),
      el("div", { class: "gscore" }, el("strong", {}, score(g.score)), el("span", { class: "of" }, ` / ${fmt(g.max, 0)}`)),
      el("div", { class: "meter" }, el("span", { style: `width:${(fill * 100).toFixed(1)}%` }))));
  }
}

function setNumber(node, value) {
  const text = score(value);
  const changed = node.dataset.value !== undefined && node.dataset.value !== String(value);
  node.textContent = text;
  node.dataset.value = String(value);
  if (changed) {
    node.classList.remove("flash");
    void node.offsetWidth; // restart the animation
    node.classList.add("flash");
  }
}

function renderTabs() {
  const present = new Set(state.agencies.map((a) => a.level));
  const order = ["ministry", "province", "department", "district", "commune"].filter((l) => present.has(l));
  const tabs = $("#level-tabs");
  tabs.replaceChildren();
  for (const level of ["", ...order]) {
    const label = level ? t("levels")[level] || level : t("all");
    tabs.append(el("button", {
      type: "button", role: "tab", class: "tab", "data-level": level,
      "aria-selected": String(state.level === level),
      onclick: () => { state.level = level; refresh(); },
    }, label));
  }
}

function renderRanking() {
  const tbody = $("#ranking tbody");
  const previous = new Map([...tbody.querySelectorAll("tr[data-agency]")].map(
    (tr) => [tr.dataset.agency, tr.querySelector("[data-testid=total]").dataset.value]));
  tbody.replaceChildren();
  const rows = state.ranking.ranking;
  $("#ranking-empty").hidden = rows.length > 0;
  for (const r of rows) {
    const total = el("span", { "data-testid": "total", "data-value": String(r.total) }, score(r.total));
    const before = previous.get(r.agency_id);
    if (before !== undefined && before !== String(r.total)) total.classList.add("flash");
    const tr = el("tr", {
      "data-agency": r.agency_id, tabindex: "0",
      class: (r.agency_id === state.agency ? "selected " : "") + (r.level === "province" ? "is-root" : ""),
      onclick: () => select(r.agency_id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(r.agency_id); } },
    },
      el("td", { class: "num rank" }, r.rank),
      el("td", { class: "agency" },
        el("div", { class: "aname" }, r.agency_name),
        el("div", { class: "muted small" }, `${r.agency_id} · ${levelName(r.level)}`),
        el("div", { class: "inline-bar" }, groupBar(r.groups, true))),
      el("td", { class: "num total" }, total, el("div", { class: "total-badge" }, badge(r.classification))),
      el("td", { class: "band-col" }, badge(r.classification)),
      el("td", { class: "groups-col" }, groupBar(r.groups, false)));
    tbody.append(tr);
  }
}

// What each criterion counts and how it is measured come from the criteria registry, served
// with the ruleset (/api/v1/ruleset): one home for them, on the server.
function criterionDoc(code) {
  if (!state.ruleset) return null;
  for (const g of state.ruleset.groups) {
    for (const c of g.criteria) if (c.code === code) return c;
  }
  return null;
}
function isMean(c) { const d = criterionDoc(c.code); return !!d && d.measure === "mean"; }

function why(c) {
  const d = criterionDoc(c.code);
  const w = d ? (state.lang === "en" ? d.counts_en : d.counts_vi) : "";
  if (isMean(c)) {
    return c.denominator ? t("avgDays")(fmt(c.numerator / c.denominator, 1), count(c.denominator)) : "–";
  }
  const base = `${count(c.numerator)} / ${count(c.denominator)} ${w}`;
  if (c.denominator === 0 && c.max > 0) {
    return `${base} (${c.points >= c.max ? t("zeroFull") : t("zeroNone")})`;
  }
  return base;
}

function renderDetail() {
  const box = $("#detail");
  if (!state.agency || !state.card) { box.hidden = true; return; }
  box.hidden = false;
  const card = state.card;
  $("#detail-name").textContent = card.agency_name || card.agency_id;
  $("#detail-level").textContent = `${card.agency_id} · ${levelName(card.level)} · ${card.period}`;
  setNumber($("#detail-total"), card.total);
  $("#detail-badge").replaceChildren(badge(card.classification));

  const tbody = $("#criteria tbody");
  tbody.replaceChildren();
  for (const g of card.groups) {
    tbody.append(el("tr", { class: `group g-${g.key}` },
      el("th", { colspan: "2", scope: "rowgroup" }, el("span", { class: `swatch g-${g.key}` }), name(g)),
      el("td", { class: "hide-sm" }),
      el("td", { class: "num" }, el("strong", {}, score(g.score)), el("span", { class: "of" }, ` / ${fmt(g.max, 0)}`)),
      el("td", { class: "num lost hide-sm" }, g.max - g.score > 0.004 ? "−" + score(g.max - g.score) : "")));
    for (const c of g.criteria) {
      const shown = c.max === 0;
      const ratio = isMean(c) ? null : c.ratio;
      const reached = ratio !== null && c.target !== null && ratio >= c.target;
      const meter = ratio === null || c.target === null ? null
        : el("div", { class: "rmeter" + (reached ? " ok" : "") },
          el("span", { class: "rfill", style: `width:${Math.min(100, ratio * 100).toFixed(1)}%` }),
          el("span", { class: "rtarget", style: `left:${(c.target * 100).toFixed(1)}%` }));
      tbody.append(el("tr", { "data-code": c.code, class: shown ? "shown-only" : "" },
        el("td", { class: "crit" }, el("div", { class: "critgrid" },
          el("span", { class: "cid" }, c.id),
          el("div", {}, el("div", { class: "cname" }, name(c)), el("div", { class: "why muted small" }, why(c))))),
        el("td", { class: "num" }, shown && isMean(c)
          ? (c.denominator ? `${fmt(c.numerator / c.denominator, 1)} ${t("days")}` : "–") : pct(ratio), meter),
        el("td", { class: "num hide-sm" }, c.target === null ? "–" : fmt(c.target * 100, 0) + "%"),
        el("td", { class: "num" }, shown ? el("span", { class: "muted small" }, t("shown"))
          : [el("strong", {}, score(c.points)), el("span", { class: "of" }, ` / ${fmt(c.max, 0)}`)]),
        el("td", { class: "num lost hide-sm" }, c.points_lost > 0.004 ? "−" + score(c.points_lost) : "")));
    }
  }
  renderTrend();
  renderLate();
  renderDelays();
}

function renderDelays() {
  const doc = state.delays;
  const tbody = $("#delays tbody");
  tbody.replaceChildren();
  $("#delays-count").textContent = doc ? t("lateCount")(count(doc.late_dossiers)) : "";
  $("#delays-empty").hidden = !doc || doc.rows.length > 0;
  if (!doc) return;
  const top = Math.max(1, ...doc.rows.map((r) => r.overrun_hours));
  for (const r of doc.rows) {
    tbody.append(el("tr", { "data-unit": r.unit },
      el("td", {}, el("span", { class: "mono" }, r.unit)),
      el("td", { class: "num" }, el("strong", {}, count(r.late_dossiers))),
      el("td", { class: "num hide-sm" }, count(r.late_steps)),
      el("td", { class: "num" }, fmt(r.overrun_hours, 2),
        el("div", { class: "overrun-bar" }, el("span", { style: `width:${(100 * r.overrun_hours / top).toFixed(1)}%` }))),
      el("td", { class: "hide-sm" },
        el("span", { class: "pill ok" }, count(r.apology_in_time)), " ",
        el("span", { class: "pill warn" }, count(r.apology_late)), " ",
        el("span", { class: "pill bad" }, count(r.apology_missing)))));
  }
}

function renderAtRisk() {
  const doc = state.atRisk;
  const tbody = $("#atrisk tbody");
  tbody.replaceChildren();
  const rows = doc ? [...doc.due_soon.map((r) => [r, false]), ...doc.overdue_open.map((r) => [r, true])] : [];
  $("#atrisk-empty").hidden = rows.length > 0;
  $("#atrisk-agency").textContent = doc ? doc.agency_id : "";
  $("#atrisk-meta").textContent = doc
    ? `${t("dueSoon")(count(doc.due_soon.length), doc.within)} · ${t("overdueOpen")(count(doc.overdue_open.length))}`
    : "";
  $("#atrisk").dataset.count = String(rows.length);
  for (const [r, past] of rows.slice(0, LATE_SHOWN)) {
    const h = r.holder;
    tbody.append(el("tr", { "data-dossier": r.dossier_id, class: past ? "past-due" : "" },
      el("td", {},
        el("a", { href: `api/v1/dossiers/${encodeURIComponent(r.dossier_id)}/history`, class: "mono dossier-link",
          // The control sheet opens in the agency's detail; without one, the link's JSON.
          onclick: (e) => { if (!$("#detail").hidden) { e.preventDefault(); openDossier(r.dossier_id); } } },
        r.dossier_id),
        el("div", { class: "muted small" }, r.agency_id)),
      el("td", { class: "num" }, dateTime(r.due_at), past ? el("div", {}, el("span", { class: "pill bad" }, t("pastDue"))) : ""),
      el("td", {}, el("span", { class: "mono" }, h.unit + (h.official ? ` · ${h.official}` : "")),
        el("div", { class: "muted small" }, h.step)),
      el("td", { class: "hide-sm" }, r.apology_issued
        ? el("span", { class: "pill ok" }, t("apologyYes")) : el("span", { class: "pill bad" }, t("apologyNone"))),
      el("td", { class: "num stake-unit" }, score(r.stake_unit)),
      el("td", { class: "num stake" }, el("strong", {}, score(r.stake)))));
  }
}

// ----- one dossier: its control sheet as a timeline ---------------------------------------

async function openDossier(dossierId) {
  const doc = await api(`dossiers/${encodeURIComponent(dossierId)}/history`);
  const box = $("#dossier");
  $("#dossier-id").textContent = dossierId;
  renderSheet(doc.control_sheet);
  box.hidden = false;
  box.dataset.dossier = dossierId;
  box.scrollIntoView({ behavior: "smooth", block: "center" });
}

function renderSheet(sheet) {
  const box = $("#sheet");
  box.replaceChildren();
  if (!sheet.length) return;
  const ms = (iso) => Date.parse(iso);
  const nowMs = state.now ? Date.parse(state.now) : Date.now();
  const ends = sheet.map((s) => (s.end ? ms(s.end) : nowMs));
  const lo = ms(sheet[0].start);
  const hi = Math.max(...ends, ...sheet.filter((s) => s.due).map((s) => ms(s.due)));
  const W = 760, L = 210, R = 16, row = 30, T = 8;
  const H = T + row * sheet.length + 24;
  const x = (v) => L + (W - L - R) * (hi === lo ? 0 : (v - lo) / (hi - lo));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart sheet-chart", role: "img",
    "aria-label": t("sheet") });
  sheet.forEach((s, i) => {
    const y = T + i * row;
    const who = s.unit + (s.official ? ` · ${s.official}` : "");
    chart.append(svg("text", { x: 4, y: y + 12, class: "step-name" }, s.step));
    chart.append(svg("text", { x: 4, y: y + 24, class: "axis" }, who.length > 34 ? who.slice(0, 33) + "…" : who));
    const a = x(ms(s.start)), b = x(ends[i]);
    const dueX = s.due ? x(ms(s.due)) : null;
    const okEnd = dueX === null ? b : Math.min(b, Math.max(a, dueX));
    chart.append(svg("rect", { x: a, y: y + 6, width: Math.max(2, okEnd - a), height: 14, rx: 3,
      class: "step-bar" + (s.end ? "" : " open") }));
    if (s.result === "late" && dueX !== null && b > dueX) {
      chart.append(svg("rect", { x: Math.max(a, dueX), y: y + 6, width: Math.max(2, b - Math.max(a, dueX)), height: 14, rx: 3,
        class: "step-late", "data-step": s.step },
      svg("title", {}, `${t("results").late}: +${t("hours")(fmt(s.overrun_hours, 2))}`)));
    }
    if (dueX !== null) chart.append(svg("line", { x1: dueX, x2: dueX, y1: y + 2, y2: y + 24, class: "due-mark" }));
    const label = s.result === "late" ? `+${fmt(s.overrun_hours, 2)}` : t("results")[s.result];
    chart.append(svg("text", { x: Math.min(b + 4, W - R), y: y + 17, class: "axis" + (s.result === "late" ? " late-text" : "") }, label));
  });
  box.append(chart);
  const tbody = el("tbody");
  for (const s of sheet) {
    tbody.append(el("tr", { class: "sheet-row", "data-result": s.result },
      el("td", {}, s.step), el("td", {}, s.unit + (s.official ? ` · ${s.official}` : "")),
      el("td", { class: "num" }, dateTime(s.start)),
      el("td", { class: "num" }, s.end ? dateTime(s.end) : t("openStep")),
      el("td", { class: "num" }, s.due ? dateTime(s.due) : "–"),
      el("td", {}, el("span", { class: "pill " + ({ late: "bad", on_time: "ok", open: "warn" }[s.result] || "") },
        t("results")[s.result] + (s.result === "late" ? ` +${t("hours")(fmt(s.overrun_hours, 2))}` : "")))));
  }
  box.append(el("table", { class: "table sheet" },
    el("thead", {}, el("tr", {}, ...["step", "holder", "start", "end", "due", "result"].map((k) => el("th", {}, t(k))))),
    tbody));
}

function renderLate() {
  const doc = state.overdue;
  const tbody = $("#late tbody");
  tbody.replaceChildren();
  $("#late-count").textContent = doc ? t("lateCount")(count(doc.count)) : "";
  $("#late-empty").hidden = !doc || doc.count > 0;
  if (!doc) return;
  for (const d of doc.dossiers.slice(0, LATE_SHOWN)) {
    const apology = d.apology_issued
      ? el("span", { class: "pill " + (d.apology_in_time ? "ok" : "warn") },
        d.apology_in_time ? t("apologyInTime") : t("apologyLate"))
      : el("span", { class: "pill bad" }, t("apologyNone"));
    const status = d.status === "finished" ? t("finished") : d.status === "waiting_on_applicant" ? t("waiting") : t("open");
    tbody.append(el("tr", { "data-dossier": d.dossier_id },
      el("td", {},
        el("a", { href: `api/v1/dossiers/${encodeURIComponent(d.dossier_id)}/history`, class: "mono dossier-link",
          onclick: (e) => { e.preventDefault(); openDossier(d.dossier_id); } }, d.dossier_id),
        el("div", { class: "muted small" }, status)),
      el("td", { class: "hide-sm" }, d.procedure_name || d.procedure_id),
      el("td", { class: "num" }, date(d.due_date)),
      el("td", { class: "num" }, el("strong", {}, count(d.days_late))),
      el("td", {}, apology)));
  }
  const more = doc.count - Math.min(doc.count, LATE_SHOWN);
  $("#late-more").hidden = more <= 0;
  $("#late-more").textContent = more > 0 ? t("more")(count(more)) : "";
}

function renderTrend() {
  const box = $("#trend");
  box.replaceChildren();
  const months = state.trend ? state.trend.months : [];
  // A month without dossiers has no meaningful index: leave a gap rather than plot a zero.
  const has = (m) => m.dossiers === null || m.dossiers === undefined || m.dossiers > 0;
  const shown = months.filter(has);
  if (!shown.length) return;
  // Draw at the box's own width so that the labels keep their size on a phone.
  const W = Math.max(300, Math.min(760, Math.round(box.clientWidth || 560)));
  const H = W < 480 ? 170 : 190, L = 34, R = 14, T = 14, B = 26;
  const lo = Math.max(0, Math.floor((Math.min(...shown.map((m) => m.total)) - 5) / 10) * 10);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (100 - lo));
  const x = (i) => L + (W - L - R) * (months.length === 1 ? 0.5 : i / (months.length - 1));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": shown.map((m) => `${m.period}: ${score(m.total)}`).join(", ") });
  for (const b of state.ruleset.bands) {
    if (b.min <= lo || b.min >= 100) continue;
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(b.min), y2: y(b.min), class: `band-line band-${bandIndex(b.label)}` }));
    chart.append(svg("text", { x: L - 6, y: y(b.min) + 4, class: "axis", "text-anchor": "end" }, b.min));
  }
  chart.append(svg("line", { x1: L, x2: W - R, y1: y(100), y2: y(100), class: "grid" }));
  chart.append(svg("text", { x: L - 6, y: y(100) + 4, class: "axis", "text-anchor": "end" }, 100));
  chart.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "grid" }));
  months.forEach((m, i) => {
    chart.append(svg("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": "middle" },
      (state.lang === "vi" ? "T" : "") + String(Number(m.period.slice(5)))));
  });
  // Runs of consecutive months with data: one area and one line each.
  let run = [];
  const runs = [];
  months.forEach((m, i) => {
    if (has(m)) run.push([x(i), y(m.total)]);
    else if (run.length) { runs.push(run); run = []; }
  });
  if (run.length) runs.push(run);
  for (const r of runs) {
    const pts = r.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points: `${r[0][0].toFixed(1)},${H - B} ${pts} ${r[r.length - 1][0].toFixed(1)},${H - B}`, class: "area" }));
    chart.append(svg("polyline", { points: pts, class: "line" }));
  }
  months.forEach((m, i) => {
    if (!has(m)) return;
    const selected = m.period === state.card.period;
    chart.append(svg("circle", { cx: x(i), cy: y(m.total), r: selected ? 5.5 : 3.8,
      class: `dot band-${bandIndex(m.classification)}` + (selected ? " sel" : "") },
    svg("title", {}, `${m.period}: ${score(m.total)} · ${t("bands")[m.classification] || m.classification}`)));
  });
  const lastIndex = months.lastIndexOf(shown[shown.length - 1]);
  const last = months[lastIndex];
  chart.append(svg("text", { x: Math.min(x(lastIndex), W - R), y: y(last.total) - 10, class: "value",
    "text-anchor": lastIndex === months.length - 1 ? "end" : "middle" }, score(last.total)));
  box.append(chart);
}

function renderAll() {
  renderStatic();
  renderSummary();
  renderTabs();
  renderRanking();
  renderDetail();
  renderAtRisk();
  $("#updated").textContent = t("updated")(new Intl.DateTimeFormat(LOCALES[state.lang], { timeStyle: "medium" }).format(new Date()));
  renderLive();
  saveUrl();
}

function saveUrl() {
  const q = new URLSearchParams();
  const p = periodLabel();
  if (p) q.set("period", p);
  if (state.level) q.set("level", state.level);
  if (state.agency) q.set("agency", state.agency);
  if (state.lang !== "vi") q.set("lang", state.lang);
  if (state.now) q.set("now", state.now);
  history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
}

// ----- interaction -------------------------------------------------------------------------

let busy = null;
let again = false;

async function refresh() {
  // One refresh at a time; a request during one runs once more after it.
  if (busy) { again = true; return busy; }
  busy = (async () => {
    try {
      await loadAll();
      renderAll();
      document.body.dataset.ready = "1";
      document.body.dataset.version = String(state.version ?? "");
    } catch (e) {
      $("#updated").textContent = `${t("error")}: ${e.message}`;
    }
  })();
  await busy;
  busy = null;
  if (again) { again = false; return refresh(); }
}

async function select(agencyId) {
  state.agency = agencyId === state.agency ? null : agencyId;
  state.card = null;
  await refresh();
  if (state.agency && window.matchMedia("(max-width: 1100px)").matches) {
    $("#detail").scrollIntoView({ behavior: "smooth", block: "start" });
  }
}

function wire() {
  $("#lang-toggle").addEventListener("click", () => {
    state.lang = state.lang === "vi" ? "en" : "vi";
    renderAll();
  });
  $("#year").addEventListener("change", (e) => {
    state.year = Number(e.target.value);
    if (!begun(state.part)) state.part = "Y";  // this year's part not begun yet: the whole year
    refresh();
  });
  $("#period").addEventListener("change", (e) => { state.part = e.target.value; refresh(); });
  $("#detail-close").addEventListener("click", () => { state.agency = null; renderAll(); });
  $("#dossier-close").addEventListener("click", () => { $("#dossier").hidden = true; });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.card) renderTrend(); }, 150);
  });
  const p = params.get("period");
  if (p && /^\d{4}(-(H[12]|Q[1-4]|0[1-9]|1[0-2]))?$/.test(p)) {
    state.year = Number(p.slice(0, 4));
    state.part = p.length > 4 ? p.slice(5) : "Y";
  }
}

// ----- live updates ------------------------------------------------------------------------

let mode = "connecting";
let pollTimer = null;
let lastRefresh = 0;
let pending = null;

function renderLive() {
  const live = $("#live");
  live.dataset.state = mode;
  $("#live-text").textContent = mode === "live" ? t("live") : mode === "polling" ? t("polling") : t("connecting");
}

function onVersion(v) {
  if (state.version === v) return;
  const first = state.version === null;
  state.version = v;
  if (first) return;
  // At most one refresh a second, however fast the projection moves.
  const wait = Math.max(0, 1000 - (Date.now() - lastRefresh));
  if (pending) return;
  pending = setTimeout(() => { pending = null; lastRefresh = Date.now(); refresh(); }, wait);
}

function startPolling() {
  if (pollTimer) return;
  mode = "polling"; renderLive();
  pollTimer = setInterval(async () => {
    try {
      const res = await fetch("healthz");
      onVersion((await res.json()).version);
    } catch (e) { /* the next tick tries again */ }
  }, 3000);
}

function startStream() {
  if (!("EventSource" in window)) { startPolling(); return; }
  let failures = 0;
  const es = new EventSource("api/v1/stream");
  es.onopen = () => { failures = 0; mode = "live"; if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } renderLive(); };
  es.onmessage = (e) => { failures = 0; mode = "live"; renderLive(); onVersion(JSON.parse(e.data).version); };
  es.onerror = () => {
    failures += 1;
    if (failures >= 3) { es.close(); startPolling(); }
  };
}

async function main() {
  wire();
  state.ruleset = await api("ruleset");
  renderStatic();
  renderLive();
  await refresh();
  startStream();
}

main();
