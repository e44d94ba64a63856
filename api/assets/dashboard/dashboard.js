// The logstats dashboard: reads the API's JSON endpoints and draws them with uPlot.
// Plain JavaScript, no build step. The view lives in the URL's query
// (?customer=cust_22&from=2024-10-10&to=2024-11-09), so a URL reproduces a view.
// When a view is drawn (or has failed with a message shown), <body data-ready="QUERY"> names it.
// An API started with --tokens answers 401 without a token: the page then asks for one, keeps it
// in sessionStorage (this tab only) and sends it as `Authorization: Bearer` on every request.
(function () {
  "use strict";

  const DAY_SECONDS = 86400;
  /** Customers per page of the fleet table. */
  const FLEET_PAGE = 15;
  /** Ranges of at most this many days are charted day by day, days without requests included. */
  const MAX_FILLED_DAYS = 1000;
  /** The first day the dashboard asks about when it looks for the last day with data. */
  const EPOCH_DAY = "1970-01-01";
  /** Days shown when the URL names no range: the 31 days ending on the last day with data. */
  const DEFAULT_DAYS = 31;
  const COLORS = {
    successful: "#2e7d32",
    failed: "#c62828",
    uptime: "#1f5f8b",
    average: "#6a1b9a",
    median: "#1f77b4",
    p99: "#e65100",
  };

  /** Where the token is kept: sessionStorage, so it lives as long as the tab. */
  const TOKEN_KEY = "logstats-token";

  const $ = (id) => document.getElementById(id);
  const charts = {};
  let fleetOffset = 0;
  let loadNumber = 0;
  /** The message of the last 401 of the current load (null: none). */
  let refusedCredentials = null;

  // ---------------------------------------------------------------- the token

  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function storeToken(token) {
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (_) {
      // Storage disabled: the token is not kept.
    }
    $("token-forget").hidden = !storedToken();
  }

  /** Shows the token form after a 401 (`message`: the API's), or hides it (null). */
  function showTokenForm(message) {
    const form = $("token-form");
    if (message === null) {
      form.hidden = true;
      return;
    }
    $("token-message").textContent = storedToken()
      ? `The API refused the token of this tab (${message}): enter another.`
      : "This API needs a token: enter one to see its stats.";
    const wasHidden = form.hidden;
    form.hidden = false;
    if (wasHidden) $("token").focus();
  }

  // ---------------------------------------------------------------- the API

  /** An error answer of the API (status 0: no answer at all). */
  class ApiError extends Error {
    constructor(status, message, path) {
      super(message);
      this.status = status;
      this.path = path;
    }
    describe() {
      return this.status === 0
        ? `Could not reach the API (${this.path}): ${this.message}`
        : `The API answered ${this.status} to ${this.path}: ${this.message}`;
    }
  }

  /** What went wrong, for people: an API error with its status, else the page's own failure. */
  function describe(error) {
    return error instanceof ApiError ? error.describe() : `The dashboard failed: ${error}`;
  }

  /** GETs `path` and returns its JSON body; any other outcome throws an ApiError. */
  async function getJson(path) {
    let response;
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      response = await fetch(path, { headers });
    } catch (error) {
      throw new ApiError(0, error.message, path);
    }
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (_) {
      // Not JSON: reported below with the start of the text.
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string"
        ? body.error
        : (text.slice(0, 200) || response.statusText || "no message");
      if (response.status === 401) refusedCredentials = message;
      throw new ApiError(response.status, message, path);
    }
    if (body === null || typeof body !== "object") {
      throw new ApiError(response.status, "the answer is not a JSON object", path);
    }
    return body;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
    }
    return search.toString();
  }

  function customerStatsPath(view) {
    return `/customers/${encodeURIComponent(view.customer)}/stats?` +
      query({ from: view.from, to: view.to });
  }

  function fleetPath(view, offset) {
    return "/customers?" + query({
      from: view.from, to: view.to, sort: "failed_requests", order: "desc",
      limit: FLEET_PAGE, offset,
    });
  }

  /**
   * The fleet endpoint's answer as {count, customers: [{id, total}]}: the one place that knows
   * the shape of GET /customers.
   */
  function parseFleet(body) {
    const rows = Array.isArray(body.customers) ? body.customers : [];
    return {
      count: [body.total_customers, body.count].find((n) => typeof n === "number") ?? rows.length,
      customers: rows.map((row) => ({ id: String(row.customer_id), total: row.total || {} })),
    };
  }

  // ---------------------------------------------------------------- the view and the URL

  /** The view the URL's query names. */
  function viewFromUrl() {
    const search = new URLSearchParams(window.location.search);
    return {
      customer: (search.get("customer") || "").trim(),
      from: search.get("from") || "",
      to: search.get("to") || "",
    };
  }

  function viewQuery(view) {
    return "?" + query({ customer: view.customer, from: view.from, to: view.to });
  }

  /** Puts `view` in the address bar: a new history entry (`push`) or in place of the current. */
  function showInUrl(view, push) {
    const url = viewQuery(view);
    if (url === window.location.search) return;
    if (push) {
      window.history.pushState(null, "", url);
    } else {
      window.history.replaceState(null, "", url);
    }
  }

  function dayToSeconds(day) {
    const [y, m, d] = day.split("-").map(Number);
    return Date.UTC(y, m - 1, d) / 1000;
  }

  function secondsToDay(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 10);
  }

  /** Whether `text` is a day that exists, written YYYY-MM-DD (the only form the page shows). */
  function isIsoDay(text) {
    return /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text) && secondsToDay(dayToSeconds(text)) === text;
  }

  /** Marks a date input invalid (the browser then refuses to submit its form) unless it holds
   * an existing day as YYYY-MM-DD, or nothing. */
  function checkDayInput(input) {
    const value = input.value.trim();
    input.setCustomValidity(value === "" || isIsoDay(value)
      ? ""
      : "Enter an existing day as YYYY-MM-DD, e.g. 2024-10-10.");
  }

  /**
   * A range for a URL without `from`: the last DEFAULT_DAYS days with data (of the fleet, else
   * of the customer), else the DEFAULT_DAYS days ending today (UTC).
   */
  async function defaultRange(customer) {
    const paths = ["/stats?" + query({ from: EPOCH_DAY })];
    if (customer) paths.push(customerStatsPath({ customer, from: EPOCH_DAY }));
    for (const path of paths) {
      try {
        const body = await getJson(path);
        const days = Array.isArray(body.days) ? body.days : [];
        if (days.length > 0) {
          const last = dayToSeconds(days[days.length - 1].date);
          return { from: secondsToDay(last - (DEFAULT_DAYS - 1) * DAY_SECONDS), to: secondsToDay(last) };
        }
      } catch (_) {
        // Try the next source; the view's own requests report errors.
      }
    }
    const today = dayToSeconds(new Date().toISOString().slice(0, 10));
    return { from: secondsToDay(today - (DEFAULT_DAYS - 1) * DAY_SECONDS), to: secondsToDay(today) };
  }

  // ---------------------------------------------------------------- formatting

  function formatCount(n) {
    return typeof n === "number" ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",") : "–";
  }

  function formatPercent(v) {
    return typeof v === "number" ? v.toFixed(2) + " %" : "–";
  }

  /** Seconds as the API gives them (rounded to the microsecond): every digit shown. */
  function formatSeconds(v) {
    return typeof v === "number" ? String(v) + " s" : "–";
  }

  const TOTAL_FORMATS = {
    total_requests: formatCount,
    successful_requests: formatCount,
    failed_requests: formatCount,
    uptime: formatPercent,
    average_latency: formatSeconds,
    median_latency: formatSeconds,
    p99_latency: formatSeconds,
  };

  // ---------------------------------------------------------------- rendering

  function showError(message) {
    const box = $("error");
    if (message) {
      box.textContent = message;
      box.hidden = false;
    } else {
      box.textContent = "";
      box.hidden = true;
    }
  }

  /** Writes `total` (a Stats object, or null to clear) into the totals list. */
  function renderTotals(total) {
    for (const item of document.querySelectorAll("#totals [data-field]")) {
      const field = item.dataset.field;
      const value = total ? total[field] : undefined;
      const dd = item.querySelector("dd");
      dd.textContent = TOTAL_FORMATS[field](value);
      // The exact JSON value, for people copying it and for tests.
      if (total) {
        dd.dataset.value = JSON.stringify(value === undefined ? null : value);
      } else {
        delete dd.dataset.value;
      }
    }
  }

  /** Columns of the charts: one x per day (every day of short ranges), the Stats of that day. */
  function dailyColumns(body) {
    const byDay = new Map(body.days.map((day) => [day.date, day]));
    const from = dayToSeconds(body.from);
    const to = dayToSeconds(body.to);
    let xs;
    if ((to - from) / DAY_SECONDS + 1 <= MAX_FILLED_DAYS) {
      xs = [];
      for (let t = from; t <= to; t += DAY_SECONDS) xs.push(t);
    } else {
      xs = body.days.map((day) => dayToSeconds(day.date));
    }
    const column = (field, empty) => xs.map((t) => {
      const day = byDay.get(secondsToDay(t));
      return day && typeof day[field] === "number" ? day[field] : empty;
    });
    return {
      xs,
      // A day without requests draws no bar (and no point on the other charts).
      successful: column("successful_requests", null),
      failed: column("failed_requests", null),
      uptime: column("uptime", null),
      average: column("average_latency", null),
      median: column("median_latency", null),
      p99: column("p99_latency", null),
    };
  }

  /** The index of the last non-null value of `column` (0 when there is none). */
  function lastDayWithData(column) {
    for (let i = column.length - 1; i >= 0; i--) if (column[i] != null) return i;
    return 0;
  }

  /** Tick spacings of the day axis, in seconds: whole days only. */
  const DAY_INCREMENTS = [1, 2, 7, 14, 28, 91, 182, 364, 728, 1820, 3640, 7280, 18200, 36400]
    .map((d) => d * DAY_SECONDS);

  /** The font of the axes' labels (uPlot's default, named here so it can be measured). */
  const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, ' +
    '"Noto Sans", sans-serif';
  /** Pixels kept free between two labels of the day axis. */
  const DAY_LABEL_GAP = 16;
  let dayLabelWidth = null;

  /**
   * The least distance between two ticks of the day axis, in CSS pixels: the widest label
   * (a whole date, YYYY-MM-DD, in the widest digits of the font) and a gap. uPlot picks the
   * smallest of DAY_INCREMENTS at least this wide, so labels never touch, whatever the range
   * and the width of the chart.
   */
  function dayTickSpace() {
    if (dayLabelWidth === null) {
      const context = document.createElement("canvas").getContext("2d");
      context.font = AXIS_FONT;
      dayLabelWidth = 0;
      for (let digit = 0; digit <= 9; digit++) {
        const d = String(digit);
        const width = context.measureText(`${d.repeat(4)}-${d.repeat(2)}-${d.repeat(2)}`).width;
        dayLabelWidth = Math.max(dayLabelWidth, width);
      }
    }
    return Math.ceil(dayLabelWidth) + DAY_LABEL_GAP;
  }

  /** Tick spacings of the requests axis: whole requests only. */
  const COUNT_INCREMENTS = [];
  for (let scale = 1; scale <= 1e15; scale *= 10) COUNT_INCREMENTS.push(scale, 2 * scale, 5 * scale);

  const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");

  function chartOptions(width, yLabel, yFormat, series, yRange, yIncrements) {
    const axisStroke = "#5b6876";
    const grid = { stroke: "#e6eaef", width: 1 };
    return {
      width,
      height: 240,
      tzDate: utc,
      cursor: { sync: { key: "logstats-days" } },
      legend: { live: true },
      hooks: {
        // Until the cursor points at a day, the legends show the last day with requests.
        ready: [(u) => u.setLegend({ idx: lastDayWithData(u.data[1]) })],
        setCursor: [(u) => {
          if (u.cursor.idx == null) u.setLegend({ idx: lastDayWithData(u.data[1]) });
        }],
      },
      scales: {
        // The charted days and half a day of margin on both sides, so the first and last bars
        // show whole. (From the data itself: uPlot widens a single day to years.)
        x: {
          time: true,
          range: (u, min, max) => {
            const xs = u.data[0];
            return xs.length === 0
              ? [min, max]
              : [xs[0] - DAY_SECONDS / 2, xs[xs.length - 1] + DAY_SECONDS / 2];
          },
        },
        y: yRange ? { range: yRange } : {},
      },
      axes: [
        {
          stroke: axisStroke, grid, ticks: grid, label: "day (UTC)", labelSize: 18, labelGap: 0, size: 34,
          font: AXIS_FONT,
          // Ticks on whole UTC days, written as ISO dates (MM-DD after the first, YYYY-MM-DD
          // where the year changes), far enough apart for the widest label.
          incrs: DAY_INCREMENTS,
          space: dayTickSpace,
          values: (u, splits) => {
            let year = null;
            return splits.map((ts) => {
              const day = secondsToDay(ts);
              const changes = day.slice(0, 4) !== year;
              year = day.slice(0, 4);
              return changes ? day : day.slice(5);
            });
          },
        },
        {
          stroke: axisStroke, grid, ticks: grid, label: yLabel, labelSize: 20, size: 62, font: AXIS_FONT,
          values: (u, splits) => splits.map(yFormat),
          ...(yIncrements ? { incrs: yIncrements } : {}),
        },
      ],
      series: [{ label: "day", value: "{YYYY}-{MM}-{DD}" }, ...series],
    };
  }

  function bars(align) {
    return uPlot.paths.bars({ size: [0.4, 48], align });
  }

  function chartDefinitions(columns) {
    const sec = (v) => (v == null ? "–" : v.toFixed(3) + " s");
    const count = (v) => (v == null ? "–" : formatCount(v));
    const pct = (v) => (v == null ? "–" : v.toFixed(2) + " %");
    const lowestUptime = Math.min(...columns.uptime.filter((v) => v !== null));
    const uptimeFloor = Number.isFinite(lowestUptime) ? Math.max(0, Math.floor(lowestUptime / 10) * 10 - 10) : 0;
    return {
      "chart-requests": {
        data: [columns.xs, columns.successful, columns.failed],
        options: (width) => chartOptions(width, "requests", (v) => formatCount(v), [
          { label: "successful", stroke: COLORS.successful, fill: COLORS.successful + "cc", width: 1, paths: bars(-1), points: { show: false }, value: (u, v) => count(v) },
          { label: "failed", stroke: COLORS.failed, fill: COLORS.failed + "cc", width: 1, paths: bars(1), points: { show: false }, value: (u, v) => count(v) },
        ], (u, min, max) => [0, Math.max(1, (max || 0) * 1.08)], COUNT_INCREMENTS),
      },
      "chart-uptime": {
        data: [columns.xs, columns.uptime],
        options: (width) => chartOptions(width, "uptime (%)", (v) => v + " %", [
          { label: "uptime", stroke: COLORS.uptime, fill: COLORS.uptime + "22", width: 2, points: { size: 5 }, value: (u, v) => pct(v) },
        ], () => [uptimeFloor, 100]),
      },
      "chart-latency": {
        data: [columns.xs, columns.average, columns.median, columns.p99],
        options: (width) => chartOptions(width, "latency (s)", (v) => v + " s", [
          { label: "average", stroke: COLORS.average, width: 2, points: { size: 4 }, value: (u, v) => sec(v) },
          { label: "median", stroke: COLORS.median, width: 2, points: { size: 4 }, value: (u, v) => sec(v) },
          { label: "p99", stroke: COLORS.p99, width: 2, dash: [6, 4], points: { size: 4 }, value: (u, v) => sec(v) },
        ], (u, min, max) => [0, Math.max(0.001, (max || 0) * 1.1)]),
      },
    };
  }

  /** Draws the three charts of a customer's answer, or removes them (`body` null). */
  function renderCharts(body) {
    for (const id of Object.keys(charts)) {
      charts[id].destroy();
      delete charts[id];
    }
    if (!body) return;
    const columns = dailyColumns(body);
    for (const [id, chart] of Object.entries(chartDefinitions(columns))) {
      const area = $(id);
      charts[id] = new uPlot(chart.options(Math.max(300, area.clientWidth)), chart.data, area);
    }
  }

  function resizeCharts() {
    for (const [id, chart] of Object.entries(charts)) {
      const width = Math.max(300, $(id).clientWidth);
      if (width !== chart.width) chart.setSize({ width, height: chart.height });
    }
  }

  async function loadCustomer(view, isCurrent) {
    const note = $("view-note");
    $("json-link").href = view.customer ? customerStatsPath(view) : "/health";
    if (!view.customer) {
      $("view-title").textContent = "Customer";
      note.textContent = "Choose a customer above, or one in the fleet table.";
      renderTotals(null);
      renderCharts(null);
      return null;
    }
    $("view-title").textContent = `${view.customer}, ${view.from} to ${view.to || "the last day with data"}`;
    note.textContent = "Loading…";
    try {
      const body = await getJson(customerStatsPath(view));
      if (!isCurrent()) return null;
      $("view-title").textContent = `${body.customer_id}, ${body.from} to ${body.to}`;
      const days = body.days.length;
      note.textContent = days === 0
        ? "No requests in this range."
        : `${days} day${days === 1 ? "" : "s"} with requests.`;
      renderTotals(body.total);
      renderCharts(body);
      return null;
    } catch (error) {
      if (!isCurrent()) return null;
      note.textContent = "";
      renderTotals(null);
      renderCharts(null);
      return error;
    }
  }

  function fleetRow(view, customer) {
    const row = document.createElement("tr");
    if (customer.id === view.customer) row.className = "current";
    const cell = (text, className) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      row.append(td);
      return td;
    };
    const link = document.createElement("a");
    const target = { customer: customer.id, from: view.from, to: view.to };
    link.href = viewQuery(target);
    link.textContent = customer.id;
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      showInUrl(target, true);
      load(target);
    });
    cell("").append(link);
    cell(formatCount(customer.total.total_requests), "number");
    cell(formatCount(customer.total.failed_requests), "number failed");
    cell(formatPercent(customer.total.uptime), "number");
    const p99 = customer.total.p99_latency;
    cell(typeof p99 === "number" ? p99.toFixed(3) + " s" : "–", "number");
    return row;
  }

  /** Fills the fleet table; returns the fleet (null when it could not be read). */
  async function loadFleet(view, isCurrent) {
    const status = $("fleet-status");
    const tbody = document.querySelector("#fleet-table tbody");
    status.classList.remove("error");
    status.textContent = "Loading…";
    try {
      const fleet = parseFleet(await getJson(fleetPath(view, fleetOffset)));
      if (!isCurrent()) return null;
      showFleet(view, fleet);
      return fleet;
    } catch (error) {
      if (!isCurrent()) return null;
      tbody.replaceChildren();
      $("fleet-previous").disabled = true;
      $("fleet-next").disabled = true;
      status.classList.add("error");
      status.textContent = error.status === 404 && error.message === "not found"
        ? "The fleet table needs GET /customers, which this API does not serve (404 not found)."
        : error.status === 401
          ? "The fleet table needs a token."
          : "Fleet table unavailable. " + describe(error);
      return null;
    }
  }

  function showFleet(view, fleet) {
    const tbody = document.querySelector("#fleet-table tbody");
    tbody.replaceChildren(...fleet.customers.map((customer) => fleetRow(view, customer)));
    const first = fleet.customers.length ? fleetOffset + 1 : 0;
    const last = fleetOffset + fleet.customers.length;
    $("fleet-status").textContent = fleet.count === 0
      ? "No customer has requests in this range."
      : `Customers ${first}-${last} of ${fleet.count}, most failed requests first.`;
    $("fleet-previous").disabled = fleetOffset === 0;
    $("fleet-next").disabled = last >= fleet.count;
    $("customer-ids").replaceChildren(...fleet.customers.map((customer) => {
      const option = document.createElement("option");
      option.value = customer.id;
      return option;
    }));
  }

  /** Shows `view`: fills the form, reads the API, draws; marks the body ready when done. */
  async function load(view) {
    const number = ++loadNumber;
    const isCurrent = () => number === loadNumber;
    document.body.removeAttribute("data-ready");
    showError("");
    refusedCredentials = null;
    if (!view.from) {
      Object.assign(view, await defaultRange(view.customer));
      if (!isCurrent()) return;
      showInUrl(view, false);
    }
    $("customer").value = view.customer;
    $("from").value = view.from;
    $("to").value = view.to;
    checkDayInput($("from"));
    checkDayInput($("to"));
    const [customerError, fleet] = await Promise.all([
      loadCustomer(view, isCurrent),
      loadFleet(view, isCurrent),
    ]);
    if (!isCurrent()) return;
    if (!view.customer && fleet && fleet.customers.length > 0) {
      // No customer asked for: show the one with the most failures.
      const top = { ...view, customer: fleet.customers[0].id };
      showInUrl(top, false);
      load(top);
      return;
    }
    showTokenForm(refusedCredentials);
    // A 401 is answered by the token form, not by an error.
    if (customerError && customerError.status !== 401) showError(describe(customerError));
    document.body.dataset.ready = window.location.search;
  }

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("token");
      const token = input.value.trim();
      input.value = "";
      if (!token) return;
      storeToken(token);
      load(viewFromUrl());
    });
    $("token-forget").addEventListener("click", () => {
      storeToken("");
      load(viewFromUrl());
    });
    $("token-forget").hidden = !storedToken();
    for (const id of ["from", "to"]) {
      $(id).addEventListener("input", (event) => checkDayInput(event.target));
    }
    $("view-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const view = {
        customer: $("customer").value.trim(),
        from: $("from").value.trim(),
        to: $("to").value.trim(),
      };
      fleetOffset = 0;
      showInUrl(view, true);
      load(view);
    });
    $("fleet-previous").addEventListener("click", () => {
      fleetOffset = Math.max(0, fleetOffset - FLEET_PAGE);
      load(viewFromUrl());
    });
    $("fleet-next").addEventListener("click", () => {
      fleetOffset += FLEET_PAGE;
      load(viewFromUrl());
    });
    window.addEventListener("popstate", () => {
      fleetOffset = 0;
      load(viewFromUrl());
    });
    new ResizeObserver(resizeCharts).observe($("customer-view"));
    load(viewFromUrl());
  }

  start();
})();
