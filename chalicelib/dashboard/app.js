// The dashboard: reads the service's JSON routes with the caller's API key and shows them.
// No library and no build step. Nothing the API answers is ever parsed as HTML: every node is made with
// createElement and filled with textContent, so a service or a reason cannot inject markup.
"use strict";

(() => {
  const KEY_STORAGE = "ecs-image-updater.key";
  const FAST_POLL_MS = 3000;
  const SLOW_POLL_MS = 15000;
  const HISTORY_LIMIT = 20;
  const OUTCOMES = ["IN_PROGRESS", "COMPLETED", "FAILED", "ROLLED_BACK", "STOPPED", "SUPERSEDED", "PENDING_APPROVAL",
    "APPROVED", "REJECTED", "EXPIRED", "STALE", "NO_CHANGE", "ERROR", "FROZEN"];
  const BUSY = new Set(["IN_PROGRESS", "APPROVING", "REJECTING"]);
  // Past this, a deployment in progress is stuck (the overview's attention STUCK): it may wait for an hour, not 3 s.
  const STUCK_MS = 30 * 60 * 1000;
  // A deployment ECS holds at a PAUSE hook waits for people (chalicelib.deploy.pauses).
  const AWAITING_ACTION = "AWAITING_ACTION";

  const $ = (id) => document.getElementById(id);
  const authMode = (document.querySelector('meta[name="auth-mode"]') || {}).content || "key";

  // ---------- small DOM helpers ----------

  /** An element with attributes (class, hidden, data-*, aria-*, ...) and children (nodes or text). */
  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") element.className = value;
      else if (name === "text") element.textContent = value;
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, "");
      else element.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function replace(container, ...children) {
    container.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
  }

  // ---------- values ----------

  function shortDigest(digest) {
    if (!digest) return null;
    const hex = String(digest).replace(/^sha256:/, "");
    return `sha256:${hex.slice(0, 12)}`;
  }

  function relative(iso, now = Date.now()) {
    if (!iso) return "";
    const moment = Date.parse(iso);
    if (Number.isNaN(moment)) return String(iso);
    const seconds = Math.round((moment - now) / 1000);
    const size = Math.abs(seconds);
    let text;
    if (size < 45) text = `${size} s`;
    else if (size < 45 * 60) text = `${Math.round(size / 60)} min`;
    else if (size < 36 * 3600) text = `${Math.round(size / 3600)} h`;
    else text = `${Math.round(size / 86400)} d`;
    return seconds <= 0 ? `${text} ago` : `in ${text}`;
  }

  /** A <time>'s text: `relative` (5 min ago), `left` (the time left before a deadline), `until` (the time, and in how long). */
  function timeText(format, iso) {
    if (format === "left") return Date.parse(iso) > Date.now() ? relative(iso).replace(/^in /, "") : "none: expired";
    if (format === "until") return `${iso} (${relative(iso)})`;
    return relative(iso);
  }

  function when(iso, format = "relative") {
    if (!iso) return h("span", { class: "muted", text: "–" });
    return h("time", { datetime: iso, title: iso, "data-format": format, text: timeText(format, iso) });
  }

  /** Every <time> of the container says what it says now: a poll recomputes them even when nothing else changed. */
  function retime(container) {
    for (const time of container.querySelectorAll("time[datetime]")) {
      const text = timeText(time.dataset.format, time.getAttribute("datetime"));
      if (time.textContent !== text) time.textContent = text;
    }
  }

  function outcomeBadge(outcome, stage) {
    if (!outcome) return h("span", { class: "badge none", text: "no deployment recorded" });
    const label = stage && outcome === "IN_PROGRESS" ? `${outcome} · ${stage}` : outcome;
    return h("span", { class: `badge o-${String(outcome).toLowerCase().replace(/_/g, "-")}`, text: label });
  }

  function revision(value) {
    if (!value) return null;
    if (typeof value === "string") return value.split("/").pop();
    if (value.family && value.revision) return `${value.family}:${value.revision}`;
    if (value.arn) return String(value.arn).split("/").pop();
    return null;
  }

  function imagesText(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map(imagesText).filter(Boolean).join(", ");
    if (typeof value === "object") {
      if (value.image) return value.name ? `${value.name}: ${value.image}` : value.image;
      return revision(value) || Object.entries(value).map(([name, image]) => `${name}: ${image}`).join(", ");
    }
    return String(value);
  }

  function shortImage(image) {
    // The repository's host is long and the same everywhere; the path's last part and the tag say what runs.
    const text = String(image || "");
    const slash = text.lastIndexOf("/");
    return slash >= 0 ? text.slice(slash + 1) : text;
  }

  function clusterName(arnOrName) {
    return String(arnOrName || "").split("/").pop();
  }

  function regionOfArn(arn) {
    const parts = String(arn || "").split(":");
    return parts.length > 3 ? parts[3] : "";
  }

  // ECS's console per partition (its China and GovCloud regions have consoles of their own).
  function consoleHost(region) {
    if (region.startsWith("cn-")) return "console.amazonaws.cn";
    if (region.startsWith("us-gov-")) return "console.amazonaws-us-gov.com";
    return "console.aws.amazon.com";
  }

  // The service's deployments in ECS's console, where each service deployment is listed by its id (the console
  // documents no address of one service deployment).
  function consoleUrl(region, cluster, service) {
    const at = encodeURIComponent(region);
    return `https://${at}.${consoleHost(region)}/ecs/v2/clusters/${encodeURIComponent(cluster)}` +
      `/services/${encodeURIComponent(service)}/deployments?region=${at}`;
  }

  function servicePath(clusterArn, service) {
    return `services/${encodeURIComponent(clusterArn)}/${encodeURIComponent(service)}`;
  }

  function serviceHash(clusterArn, service) {
    return `#/service/${encodeURIComponent(clusterArn)}/${encodeURIComponent(service)}`;
  }

  // ---------- the API ----------

  class ApiError extends Error {
    constructor(status, body) {
      const message = (body && (body.Message || body.message)) || `the service answered ${status}`;
      super(message);
      this.status = status;
      this.body = body || {};
    }

    /** The key itself was refused (API Gateway's own 403, or the local stage's), not a rule of the permissions. */
    get keyRefused() {
      if (this.status === 401) return true;
      if (this.status !== 403) return false;
      return !this.body.Code || /x-api-key|api key/i.test(this.message);
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null;
    }
  }

  async function api(method, path, body) {
    const headers = { "x-api-key": storedKey() || "" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let answer = null;
    try {
      answer = text ? JSON.parse(text) : null;
    } catch {
      answer = { message: text.slice(0, 300) };
    }
    if (!response.ok && response.status !== 202) {
      const error = new ApiError(response.status, answer);
      if (error.keyRefused) signedOut(`The key was refused (${response.status}: ${error.message}). Type it again.`);
      throw error;
    }
    return { status: response.status, body: answer };
  }

  // ---------- messages ----------

  let alertFromPoll = false;

  function showError(error, fromPoll = false) {
    if (error instanceof ApiError && error.keyRefused) return; // the sign-in form says it
    const text = error instanceof ApiError ? `${error.status}: ${error.message}` : `The service could not be reached: ${error.message}`;
    showMessage(text, fromPoll);
  }

  /** An error of the page itself (not the API's) in the alert. */
  function showMessage(text, fromPoll = false) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    alertFromPoll = fromPoll;
  }

  function clearError(onlyFromPoll = false) {
    if (onlyFromPoll && !alertFromPoll) return;
    $("alert").hidden = true;
    $("alert-text").textContent = "";
  }

  /** What an action of the person did (a vote, a rollback, a freeze), said to screen readers too. */
  function announce(text) {
    $("notice").textContent = text;
  }

  /** One short line when a poll finds something changed ("web: COMPLETED"), for screen readers only: the page's
   * lists themselves are not live regions, so a poll that redraws them (or their times) says nothing. */
  function summarize(lines) {
    if (!lines.length) return;
    const shownLines = lines.slice(0, 3).join("; ");
    $("changes").textContent = lines.length > 3 ? `${shownLines}; and ${lines.length - 3} more` : shownLines;
  }

  // ---------- actions: one at a time ----------

  const inFlight = new Set(); // the keys of the actions whose requests run (a dry run, a dialog, the write)

  /** Run an action at most once at a time: its buttons (data-action="key") are disabled meanwhile, a second click
   * or Enter does nothing, and a redraw draws them disabled too. */
  async function once(key, action) {
    if (inFlight.has(key)) return;
    inFlight.add(key);
    const active = document.activeElement;
    const focus = active && active.dataset ? active.dataset.focus : null;
    disable(key, true);
    try {
      await action();
    } finally {
      inFlight.delete(key);
      disable(key, false);
      // A button disabled (or redrawn) while it had focus lost it: give it back, found by its data-focus key.
      const lost = !document.activeElement || document.activeElement === document.body;
      const again = focus ? document.querySelector(`[data-focus="${CSS.escape(focus)}"]`) : null;
      if (lost && again && !$("confirm").open) again.focus();
    }
  }

  function disable(key, disabled) {
    for (const button of document.querySelectorAll(`[data-action="${CSS.escape(key)}"]`)) button.disabled = disabled;
  }

  /** A button for an action that sends a request: `key` names the action (its in-flight guard); give it a
   * data-focus key in `attributes` to keep focus on it across redraws. */
  function actionButton(key, attributes, label, action) {
    return h("button", { type: "button", ...attributes, "data-action": key, disabled: inFlight.has(key),
      onclick: () => once(key, action) }, label);
  }

  // ---------- sign in ----------

  function signedOut(message) {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // a tab without storage: the key only lived in this page
    }
    stopPolling();
    generation += 1; // a refresh still on its way draws nothing now
    page = null;
    busy = false;
    replace($("view"));
    $("principal").textContent = "";
    $("sign-out").hidden = true;
    clearBanner();
    $("updated").textContent = "";
    $("changes").textContent = "";
    clearError();
    const note = $("sign-in-message");
    note.textContent = message || "";
    note.hidden = !message;
    $("sign-in").hidden = false;
    $("iam-note").hidden = authMode !== "iam";
    $("key").value = "";
    $("key").focus();
  }

  async function signIn(key) {
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      const { body } = await api("GET", "whoami");
      $("principal").textContent = body && body.principal ? `Signed in as ${body.principal}` : "Signed in";
    } catch (error) {
      if (!(error instanceof ApiError && error.keyRefused)) showError(error);
      if (!storedKey()) return;
    }
    $("sign-in").hidden = true;
    $("iam-note").hidden = true;
    $("sign-out").hidden = false;
    route();
  }

  // ---------- polling ----------

  let timer = null;
  let busy = false; // something shown is in progress: poll fast
  let page = null; // the page shown: {name, refresh(freezes, current)}
  // Each refresh takes the next number, and so does signing out: only the newest refresh's answers are drawn (an
  // action's refresh may overlap a poll, and an older answer landing last would draw stale data).
  let generation = 0;

  function stopPolling() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function schedule() {
    stopPolling();
    if (document.hidden || !storedKey() || !page) return;
    timer = setTimeout(refresh, busy ? FAST_POLL_MS : SLOW_POLL_MS);
  }

  async function refresh() {
    stopPolling();
    if (!storedKey() || !page) return;
    const shown = page;
    const mine = ++generation;
    // Still the newest refresh, of the page shown, signed in: else its answers are dropped, drawn nowhere.
    const current = () => mine === generation && shown === page && Boolean(storedKey());
    let pageBusy = false;
    try {
      // One GET freezes per tick, for the banner and for the freezes page alike. A caller whose rules give no
      // read on any freeze's scope is refused it: the banner is then left out, the page it is on still drawn.
      const freezes = api("GET", "freezes").then((answer) => answer.body);
      const banner = freezes.catch(() => ({}));
      [pageBusy] = await Promise.all([shown.refresh(freezes, current), showFreezeBanner(banner, current)]);
      if (!current()) return;
      clearError(true);
      const now = new Date();
      $("updated").textContent =
        `Updated ${now.toLocaleTimeString()}${pageBusy ? " · a deployment is in progress: refreshing every 3 s" : ""}`;
    } catch (error) {
      if (!current()) return;
      showError(error, true);
    }
    busy = Boolean(pageBusy);
    schedule();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopPolling();
    else if (storedKey() && page) refresh();
  });

  // ---------- the freeze banner ----------

  function scopeText(scope) {
    const clusters = (scope && scope.clusters) || [];
    const services = (scope && scope.services) || [];
    if (!clusters.length && !services.length) return "everything";
    const parts = [];
    if (clusters.length) parts.push(`clusters ${clusters.map(clusterName).join(", ")}`);
    if (services.length) parts.push(`services ${services.join(", ")}`);
    return parts.join("; ");
  }

  let bannerText = ""; // what the banner says: it is redrawn (and so announced) only when that changes

  function clearBanner() {
    bannerText = "";
    replace($("freeze-banner"));
    $("freeze-banner").hidden = true;
  }

  async function showFreezeBanner(freezes, current) {
    const body = (await freezes) || {};
    if (!current()) return false;
    const applying = [
      ...(body.freezes || []).filter((freeze) => freeze.active !== false)
        .map((freeze) => `Frozen: ${scopeText(freeze.scope)} until ${freeze.until} (${freeze.reason})`),
      ...(body.windows || []).filter((window) => window.appliesNow)
        .map((window) => `Freeze window ${window.name}: ${scopeText(window.scope)} until ${window.periodEnd} (${window.reason})`),
    ];
    const text = applying.join("\n");
    if (text === bannerText) return false;
    if (!text) {
      clearBanner();
      return false;
    }
    bannerText = text;
    const banner = $("freeze-banner");
    replace(banner, applying.map((line) => h("p", { text: line })), h("p", {}, h("a", { href: "#/freezes", text: "See the freezes" })));
    banner.hidden = false;
    return false;
  }

  // ---------- pages ----------

  function section(title, ...children) {
    return h("section", { class: "block" }, h("h2", { text: title }), ...children);
  }

  /** Keep focus (and a text field's caret) on the same control across a re-render: each control that can have
   * focus carries a stable data-focus key (a service, an approval's id, a record's time and request, never a
   * position in a list). Only when that control is gone does focus go to the page's main part. */
  function keepingFocus(render) {
    const active = document.activeElement;
    const key = active && active.dataset ? active.dataset.focus : null;
    const caret = key && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
    render();
    if (!key || (active.isConnected && document.activeElement === active)) return;
    const again = document.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) {
      again.focus();
      if (caret && typeof again.setSelectionRange === "function") again.setSelectionRange(...caret);
    } else if (!document.activeElement || document.activeElement === document.body) {
      $("main").focus();
    }
  }

  // Services: every service the caller may read, "needs attention" first, grouped by account/region/cluster.
  function servicesPage() {
    const filterText = h("input", { id: "filter-name", type: "search", autocomplete: "off", placeholder: "web" });
    const filterOutcome = h("select", { id: "filter-outcome" },
      h("option", { value: "", text: "any outcome" }),
      OUTCOMES.map((outcome) => h("option", { value: outcome, text: outcome })),
      h("option", { value: "none", text: "no deployment recorded" }));
    // Not a live region: a poll redraws it; what changed is said in one line (summarize).
    const results = h("div", { id: "services", "aria-busy": "true" });
    const filters = h("form", { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "filter-name", text: "Service or cluster name" }), filterText),
      h("div", { class: "field" }, h("label", { for: "filter-outcome", text: "Newest outcome" }), filterOutcome));
    replace($("view"), h("h1", { text: "Services" }), filters, results);

    let answer = null;
    let drawn = null;
    let outcomes = null; // each service's newest outcome at the last poll: what changed since is summarized

    function matches(entry) {
      const text = filterText.value.trim().toLowerCase();
      const outcome = filterOutcome.value;
      if (text && !`${entry.service} ${entry.cluster}`.toLowerCase().includes(text)) return false;
      const newest = entry.newest ? entry.newest.outcome : null;
      if (outcome === "none") return !newest;
      return !outcome || newest === outcome;
    }

    function row(entry, withPlace) {
      const newest = entry.newest || {};
      const images = (entry.containers || []).map((container) => h("span", { class: "image" },
        h("span", { class: "tag", text: container.tag || shortImage(container.image) }),
        container.digest ? h("code", { class: "digest", text: shortDigest(container.digest) }) : null));
      const focus = `service:${entry.clusterArn}/${entry.service}`;
      return h("li", {},
        h("a", { class: "row", href: serviceHash(entry.clusterArn, entry.service), "data-focus": focus },
          h("span", { class: "name" }, entry.service,
            withPlace ? h("span", { class: "place", text: ` ${entry.account} · ${entry.region} · ${entry.cluster}` }) : null),
          entry.attention ? h("span", { class: "attention", text: attentionText(entry) }) : null,
          h("span", { class: "images" }, images.length ? images : h("span", { class: "muted", text: "no containers" })),
          h("span", { class: "outcome" }, outcomeBadge(newest.outcome, newest.lifecycleStage)),
          h("span", { class: "by" }, newest.by ? h("span", { text: newest.by }) : h("span", { class: "muted", text: "–" })),
          h("span", { class: "when" }, when(newest.at)),
          h("span", { class: "policy" }, entry.policy ? `follows ${entry.policy}` : h("span", { class: "muted", text: "no policy" }),
            entry.pendingApprovals ? ` · ${entry.pendingApprovals} approval(s) pending` : "")));
    }

    function outcomeOf(entry) {
      if (!entry.newest) return "no deployment recorded";
      return entry.newest.paused === true ? `${entry.newest.outcome}, paused` : entry.newest.outcome;
    }

    function attentionText(entry) {
      const labels = { FAILED: "failed", ROLLED_BACK: "rolled back", STUCK: "in progress for over 30 min",
        PENDING_APPROVAL: "waiting for approval", STOPPED: "stopped" };
      return `Needs attention: ${labels[entry.attention] || entry.attention}`;
    }

    function draw() {
      if (!answer) return;
      const services = (answer.services || []).filter(matches);
      const attention = services.filter((entry) => entry.attention);
      const parts = [];
      const failed = (answer.places || []).filter((place) => place.error);
      if (failed.length) {
        parts.push(section("Places that could not be read",
          h("ul", { class: "failed-places" }, failed.map((place) => h("li", { text: `${place.account} · ${place.region}: ${place.error}` })))));
      }
      if (attention.length) {
        parts.push(h("section", { class: "block attention-block", "aria-labelledby": "attention-title" },
          h("h2", { id: "attention-title", text: `Needs attention (${attention.length})` }),
          h("ul", { class: "rows" }, attention.map((entry) => row(entry, true)))));
      }
      const groups = new Map();
      for (const entry of services) {
        const place = `${entry.account} · ${entry.region}`;
        if (!groups.has(place)) groups.set(place, new Map());
        const clusters = groups.get(place);
        if (!clusters.has(entry.cluster)) clusters.set(entry.cluster, []);
        clusters.get(entry.cluster).push(entry);
      }
      for (const [place, clusters] of groups) {
        parts.push(h("section", { class: "block" }, h("h2", { text: place }),
          [...clusters].map(([cluster, entries]) => h("div", { class: "cluster" },
            h("h3", { text: `Cluster ${cluster}` }),
            h("ul", { class: "rows" }, entries.map((entry) => row(entry, false)))))));
      }
      if (!services.length) {
        parts.push(h("p", { class: "empty", text: (answer.services || []).length ? "No service matches the filter." : "No service to show: none the key may read." }));
      }
      keepingFocus(() => replace(results, parts));
      results.setAttribute("aria-busy", "false");
    }

    filterText.addEventListener("input", draw);
    filterOutcome.addEventListener("change", draw);

    return {
      name: "services",
      async refresh(freezes, current) {
        const { body } = await api("GET", "services");
        if (!current()) return false;
        const services = body.services || [];
        const fresh = JSON.stringify(services) + JSON.stringify(body.places || []);
        answer = body;
        if (fresh !== drawn) {
          drawn = fresh;
          draw();
        } else {
          retime(results);
        }
        // A service whose newest deployment is another one, or ended otherwise, since the last poll.
        const keyOf = (entry) => `${entry.clusterArn}/${entry.service}`;
        const now = new Map(services.map((entry) => [keyOf(entry), `${entry.newest ? entry.newest.at : ""} ${outcomeOf(entry)}`]));
        if (outcomes) {
          summarize(services.filter((entry) => outcomes.get(keyOf(entry)) !== now.get(keyOf(entry)))
            .map((entry) => `${entry.service}: ${outcomeOf(entry)}`));
        }
        outcomes = now;
        // A deployment stuck for over 30 min, or one ECS holds at a hook for people to decide, may wait an hour:
        // neither makes the page poll every 3 s.
        return services.some((entry) => entry.newest && BUSY.has(entry.newest.outcome) && entry.attention !== "STUCK" &&
          entry.newest.paused !== true);
      },
    };
  }

  // A service: its status, its history as a timeline, its description file, roll back and stop.
  function servicePage(clusterArn, service) {
    const base = servicePath(clusterArn, service);
    // Neither is a live region: a poll redraws them; a change of the newest outcome is said in one line.
    const statusBox = h("div", { id: "status" });
    const download = h("p", { class: "download" },
      h("button", { type: "button", id: "description", onclick: () => downloadDescription() }, "Download the description file"),
      h("a", { id: "description-link", hidden: true }));
    const timeline = h("ol", { id: "history", class: "timeline" });
    replace($("view"),
      h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Services" }), ` / ${clusterName(clusterArn)} /`),
      h("h1", { text: service }),
      statusBox, download,
      h("h2", { text: "History" }), timeline);

    let status = null;
    let records = [];
    let drawnStatus = null;
    let drawnHistory = null;
    let outcome = null; // the newest outcome at the last poll: a change is summarized

    async function downloadDescription() {
      try {
        const { body } = await api("GET", `${base}/description`);
        const blob = new Blob([`${JSON.stringify(body, null, 2)}\n`], { type: "application/json" });
        const link = $("description-link");
        if (link.href) URL.revokeObjectURL(link.href);
        link.href = URL.createObjectURL(blob);
        link.download = `${service}.json`;
        link.textContent = `${service}.json`;
        link.hidden = false;
        link.click();
        announce(`The description file ${service}.json is ready.`);
      } catch (error) {
        showError(error);
      }
    }

    /** ECS holds the record's deployment at a PAUSE hook: it waits for people, maybe for an hour. */
    function paused(record) {
      return Boolean(record && record.pause && record.pause.status === AWAITING_ACTION);
    }

    /** In progress and soon done: not paused at a hook, not in progress for over 30 min (stuck). */
    function moving(value, record, since) {
      if (!BUSY.has(value) || paused(record)) return false;
      const started = Date.parse(since || "");
      return !(value === "IN_PROGRESS" && !Number.isNaN(started) && Date.now() - started > STUCK_MS);
    }

    /** The deployment under way: ECS's PRIMARY one (the newest); the ACTIVE one is what it replaces. */
    function primaryDeployment() {
      const deployments = status.deployments || [];
      return deployments.find((deployment) => deployment.status === "PRIMARY") || deployments[0] || null;
    }

    function recordOf(deploymentId) {
      return deploymentId ? records.find((record) => record.deploymentId === deploymentId) || null : null;
    }

    /** A record's stable key: its time and request (what its sort key is made of), never its place in the list. */
    function recordKey(record) {
      return `${record.at}#${record.requestId || record.deploymentId || revision(record.taskDefinition) || ""}`;
    }

    function drawStatus() {
      const running = (status.containers || []).map((container) => h("li", {},
        h("span", { class: "cname", text: `${container.name}: ` }), h("code", { text: container.image })));
      const newest = primaryDeployment();
      const held = paused(recordOf(newest && newest.id)) ? recordOf(newest.id).pause : null;
      const region = regionOfArn(clusterArn) || "";
      const stage = status.serviceDeployment ? status.serviceDeployment.lifecycleStage : null;
      keepingFocus(() => replace(statusBox,
        h("dl", { class: "facts" },
          h("dt", { text: "Status" }), h("dd", { text: status.status || "–" }),
          h("dt", { text: "Tasks" }), h("dd", { text: `${status.runningCount ?? "?"} running of ${status.desiredCount ?? "?"}` +
            (status.pendingCount ? `, ${status.pendingCount} pending` : "") }),
          h("dt", { text: "Revision" }), h("dd", { text: revision(status.taskDefinition) || "–" }),
          h("dt", { text: "Newest deployment" }), h("dd", {}, outcomeBadge(status.outcome, stage),
            newest ? h("code", { class: "id", text: ` ${newest.id}` }) : null),
          h("dt", { text: "Images" }), h("dd", {}, h("ul", { class: "plain" }, running))),
        held ? h("p", { class: "pause-note" }, `ECS holds this deployment at ${held.lifecycleStage || "a lifecycle hook"} until it is decided: `,
          h("a", { href: "#/approvals", text: "see the approvals" })) : null,
        h("p", { class: "actions" },
          status.outcome === "IN_PROGRESS" && newest
            ? actionButton("stop", { id: "stop", class: "danger", "data-focus": "stop" }, "Stop this deployment", () => confirmStop(newest))
            : null,
          region ? h("a", { href: consoleUrl(region, clusterName(clusterArn), service), rel: "noopener noreferrer", target: "_blank",
            text: "ECS console: the service's deployments" }) : null)));
    }

    function drawHistory() {
      const running = revision(status && status.taskDefinition);
      const items = records.map((record) => {
        const target = revision(record.taskDefinition);
        const from = (record.containers || []).map((c) => `${c.name}: ${shortImage(c.previousImage || "?")} → ${shortImage(c.image)}`);
        const region = record.region || regionOfArn(clusterArn);
        // Only a revision that ran to completion is one to go back to: not one refused, expired, failed, stopped
        // or still waiting for an approval.
        const canRollBack = record.outcome === "COMPLETED" && target && target !== running && record.changed !== false &&
          record.taskDefinition && record.taskDefinition.revision;
        return h("li", { class: "event" },
          h("div", { class: "event-head" }, outcomeBadge(record.outcome, record.lifecycleStage), " ", when(record.at),
            h("span", { class: "action", text: ` ${record.action || "update"}` })),
          h("p", { class: "who", text: `by ${record.principal || record.keyId || "unknown"}` }),
          from.length ? h("ul", { class: "plain changes" }, from.map((line) => h("li", {}, h("code", { text: line })))) : null,
          h("p", { class: "revs" },
            `${revision(record.previousTaskDefinition) || "–"} → ${target || "–"}`,
            record.deploymentId ? h("code", { class: "id", text: ` ${record.deploymentId}` }) : null),
          record.outcomeReason || (record.error && record.error.Message)
            ? h("p", { class: "reason", text: record.outcomeReason || record.error.Message }) : null,
          h("p", { class: "actions" },
            canRollBack ? actionButton("rollback", { class: "rollback", "data-focus": `rollback:${recordKey(record)}` },
              `Roll back to ${target}`, () => confirmRollBack(record)) : null,
            record.deploymentId && region ? h("a", { href: consoleUrl(region, clusterName(clusterArn), service),
              rel: "noopener noreferrer", target: "_blank", text: "ECS console" }) : null));
      });
      keepingFocus(() => replace(timeline, items.length ? items : h("li", { class: "empty", text: "No deployment recorded yet." })));
    }

    const valueText = (value) => (value === null || value === undefined ? "(none)" : typeof value === "string" ? value : JSON.stringify(value));

    async function confirmRollBack(record) {
      const target = revision(record.taskDefinition);
      const asked = { cluster: clusterArn, service, taskDefinition: target };
      let answer;
      try {
        // The rollback's own dry run: its checks (permissions, images, the revision) and the diff of the two
        // revisions as registered; nothing is locked, written or recorded.
        ({ body: answer } = await api("POST", "rollback", { ...asked, dryRun: true }));
      } catch (error) {
        if ((error instanceof ApiError && error.keyRefused) || !timeline.isConnected) return;
        await confirm("Roll back", [
          h("p", { text: `Roll ${service} back to ${target}?` }),
          h("p", { class: "refused", text: `The rollback's dry run was refused: ${error instanceof ApiError ? `${error.status}: ` : ""}${error.message}` }),
          h("p", { text: "Nothing was changed." }),
        ], null);
        return;
      }
      if (!timeline.isConnected) return; // the page was left meanwhile
      const from = revision(answer.previousTaskDefinition) || revision(status.taskDefinition) || "the running revision";
      const to = revision(answer.taskDefinition) || target;
      const diff = (answer.diff || []).map((change) => `${change.path}: ${valueText(change.from)} → ${valueText(change.to)}`);
      const checks = (answer.verification || []).map((check) =>
        `${check.ok ? "✓" : "✗"} ${check.check} ${check.target || ""}${check.detail ? `: ${check.detail}` : ""}`);
      const warnings = answer.warnings || [];
      if (answer.changed === false) {
        await confirm("Roll back", [h("p", { text: `${service} already runs ${to}: a rollback would change nothing.` })], null);
        return;
      }
      const body = [
        h("p", { text: `Roll ${service} back from ${from} to ${to}?` }),
        h("h3", { text: "What changes" }),
        diff.length ? h("ul", { class: "diff plain" }, diff.map((line) => h("li", {}, h("code", { text: line }))))
          : h("p", { text: "The two revisions differ in no field." }),
        checks.length ? h("h3", { text: "Checks" }) : null,
        checks.length ? h("ul", { class: "checks plain" }, checks.map((line) => h("li", { text: line }))) : null,
        warnings.map((warning) => h("p", { class: "refused", text: `Warning: ${warning}` })),
      ];
      if (!(await confirm("Roll back", body, `Roll back to ${to}`))) return;
      try {
        await api("POST", "rollback", asked);
        announce(`Rolled back to ${to}: the deployment started.`);
        clearError();
      } catch (error) {
        showError(error);
      }
      await refresh();
    }

    async function confirmStop(deployment) {
      // What stopping does: the revision under way, and the one a rollback returns to (what ECS's ACTIVE deployment
      // runs, else what the deployment's record replaced), with their images.
      const record = recordOf(deployment.id);
      const underWay = revision(deployment.taskDefinition) || revision(record && record.taskDefinition) || "?";
      const replaced = (status.deployments || []).find((other) => other !== deployment && other.status === "ACTIVE");
      const back = revision(replaced && replaced.taskDefinition) || revision(record && record.previousTaskDefinition);
      const changes = (record && record.containers) || [];
      const newImages = revision(status.taskDefinition) === underWay
        ? (status.containers || []).map((container) => `${container.name}: ${container.image}`)
        : changes.map((change) => `${change.name}: ${change.image}`);
      const oldImages = changes.filter((change) => change.previousImage).map((change) => `${change.name}: ${change.previousImage}`);
      const images = (lines) => (lines.length ? h("ul", { class: "diff plain" }, lines.map((line) => h("li", {}, h("code", { text: line }))))
        : h("p", { class: "muted", text: "its images are not known here" }));
      const choice = h("fieldset", {},
        h("legend", { text: "How to stop it" }),
        h("label", {}, h("input", { type: "radio", name: "stop-action", value: "rollback", checked: true }),
          ` Roll back: ECS returns the service to ${back || "what ran before"}`),
        h("label", {}, h("input", { type: "radio", name: "stop-action", value: "abort" }),
          " Abort: ECS stops the deployment where it is"));
      const body = [
        h("p", { text: `Stop deployment ${deployment.id} of ${service}?` }),
        h("h3", { text: `Under way: ${underWay}` }), images(newImages),
        h("h3", { text: `A rollback returns to: ${back || "what ran before (not known here)"}` }),
        back ? images(oldImages) : null,
        oldImages.length > 0 && newImages.length > oldImages.length ? h("p", { class: "muted", text: "Only the images that change are listed." }) : null,
        choice,
      ];
      if (!(await confirm("Stop the deployment", body, "Stop it"))) return;
      const action = choice.querySelector("input:checked").value;
      try {
        await api("POST", `${base}/deployments/${encodeURIComponent(deployment.id)}/stop`, { action });
        announce(`ECS took the stop (${action}).`);
        clearError();
      } catch (error) {
        showError(error);
      }
      await refresh();
    }

    return {
      name: "service",
      async refresh(freezes, current) {
        const [statusAnswer, historyAnswer] = await Promise.all([
          api("GET", base), api("GET", `${base}/history?limit=${HISTORY_LIMIT}`)]);
        if (!current()) return false;
        status = statusAnswer.body;
        records = historyAnswer.body.records || [];
        const newest = primaryDeployment();
        const newestRecord = recordOf(newest && newest.id);
        const freshStatus = JSON.stringify(status) + JSON.stringify(newestRecord && newestRecord.pause);
        const freshHistory = JSON.stringify(records) + JSON.stringify(status);
        if (freshStatus !== drawnStatus) {
          drawnStatus = freshStatus;
          drawStatus();
        }
        if (freshHistory !== drawnHistory) {
          drawnHistory = freshHistory;
          drawHistory();
        } else {
          retime(timeline);
        }
        const said = status.outcome ? `${status.outcome}${paused(newestRecord) ? ", paused" : ""}` : "no deployment";
        if (outcome !== null && said !== outcome) summarize([`${service}: ${said}`]);
        outcome = said;
        const since = (status.serviceDeployment && (status.serviceDeployment.startedAt || status.serviceDeployment.createdAt)) ||
          (newestRecord && newestRecord.at) || (newest && newest.createdAt);
        return moving(status.outcome, newestRecord, since) ||
          records.some((record) => moving(record.outcome, record, record.at));
      },
    };
  }

  // Approvals: what waits for a vote, its votes (x of N), who asked, what changes, time left; approve or reject.
  function approvalsPage() {
    const list = h("div", { id: "approvals" }); // not a live region: a change of the count is said in one line
    replace($("view"), h("h1", { text: "Approvals" }), list);
    let drawn = null;
    let waiting = null; // how many were waiting at the last poll
    // The comments being typed, by approval id: a redraw draws them again, and a vote sends the one typed.
    const drafts = new Map();

    async function vote(approval, decision) {
      const body = { decision };
      const comment = (drafts.get(approval.id) || "").trim();
      if (comment) body.comment = comment;
      try {
        const { body: answer } = await api("POST", `approvals/${encodeURIComponent(approval.id)}`, body);
        announce(`Approval ${approval.id}: ${answer.approval ? answer.approval.status : decision}.`);
        drafts.delete(approval.id);
        clearError();
      } catch (error) {
        showError(error);
      }
      drawn = null;
      await refresh();
    }

    function card(approval) {
      const commentId = `comment-${approval.id}`;
      const comment = h("textarea", { id: commentId, rows: 2, maxlength: 1000, "data-focus": `comment:${approval.id}`,
        oninput: (event) => drafts.set(approval.id, event.target.value) });
      comment.value = drafts.get(approval.id) || "";
      const changes = (approval.services || []).map((change) => h("li", {},
        h("strong", { text: change.service }),
        h("ul", { class: "plain" }, (change.containers || []).map((container) => h("li", {},
          h("code", { text: `${container.name}: ${shortImage(container.previousImage || "?")} → ${shortImage(container.image)}` }))))));
      const votes = (approval.votes || []).map((v) => h("li", { text: `${v.principal}: ${v.decision}${v.comment ? ` (“${v.comment}”)` : ""}` }));
      // A pause: an ECS deployment under way waits at a lifecycle hook; approving continues it, rejecting rolls it back.
      const hook = approval.kind === "pause" ? approval.hook || {} : null;
      const paused = hook ? h("p", { class: "pause-note",
        text: `ECS paused a deployment already under way at ${hook.lifecycleStage || "a lifecycle hook"}: approving continues it, ` +
          `rejecting rolls it back; undecided, ECS will ${hook.timeoutAction === "CONTINUE" ? "continue" : "roll back"} at its timeout.` }) : null;
      if (hook && !changes.length) changes.push(h("li", { class: "muted", text: "a deployment this service did not make" }));
      return h("article", { class: `card approval${hook ? " pause" : ""}`, "data-approval": approval.id, "data-kind": approval.kind || "deploy" },
        h("h2", { text: `${approval.cluster}: ${(approval.services || []).map((s) => s.service).join(", ")}${hook ? " (paused)" : ""}` }),
        paused,
        h("dl", { class: "facts" },
          h("dt", { text: "Votes" }), h("dd", { class: "votes", text: `${approval.approvals} of ${approval.required}` }),
          h("dt", { text: "Status" }), h("dd", {}, outcomeBadge(approval.status)),
          h("dt", { text: "Asked by" }), h("dd", { text: approval.requestedBy || "–" }),
          h("dt", { text: "Asked" }), h("dd", {}, when(approval.requestedAt)),
          h("dt", { text: "Time left" }), h("dd", { class: "left" }, approval.deadline ? when(approval.deadline, "left") : "–"),
          approval.reason ? h("dt", { text: "Reason" }) : null, approval.reason ? h("dd", { text: approval.reason }) : null),
        h("h3", { text: hook ? "The deployment" : "What changes" }), h("ul", { class: "plain changes" }, changes),
        votes.length ? h("h3", { text: "Votes so far" }) : null, votes.length ? h("ul", { class: "plain" }, votes) : null,
        approval.status === "PENDING" ? h("form", { class: "vote", onsubmit: (event) => event.preventDefault() },
          h("label", { for: commentId, text: "Comment (optional)" }), comment,
          h("div", { class: "actions" },
            actionButton(`vote:${approval.id}`, { class: "primary approve", "data-focus": `approve:${approval.id}` },
              hook ? "Approve: continue" : "Approve", () => vote(approval, "approve")),
            actionButton(`vote:${approval.id}`, { class: "danger reject", "data-focus": `reject:${approval.id}` },
              hook ? "Reject: roll back" : "Reject", () => vote(approval, "reject")))) : null);
    }

    return {
      name: "approvals",
      async refresh(freezes, current) {
        const { body } = await api("GET", "approvals");
        if (!current()) return false;
        const approvals = body.approvals || [];
        const fresh = JSON.stringify(approvals);
        if (fresh !== drawn) {
          drawn = fresh;
          // A comment being typed survives: its draft is drawn again, focus and caret stay in it.
          keepingFocus(() => replace(list, approvals.length ? approvals.map(card) : h("p", { class: "empty", text: "Nothing waits for your vote." })));
          for (const id of drafts.keys()) if (!approvals.some((approval) => approval.id === id)) drafts.delete(id);
        } else {
          retime(list); // "Time left" goes down even when nothing else changed
        }
        const pending = approvals.filter((approval) => approval.status === "PENDING").length;
        if (waiting !== null && pending !== waiting) summarize([`${pending} approval(s) waiting for a vote`]);
        waiting = pending;
        return approvals.some((approval) => BUSY.has(approval.status));
      },
    };
  }

  // Freezes: the freezes in force and the windows; make one, lift one.
  function freezesPage() {
    const list = h("div", { id: "freezes" }); // not a live region: the banner (role=status) says what applies
    const until = new Date(Date.now() + 3600 * 1000);
    const local = new Date(until.getTime() - until.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    const form = h("form", { id: "new-freeze", class: "card" },
      h("h2", { text: "Freeze" }),
      h("p", { class: "muted", text: "Refuses every write to the services of the scope until the time, for the reason. Leave both scope fields empty to stop everything." }),
      h("div", { class: "field" }, h("label", { for: "freeze-clusters", text: "Clusters (comma-separated: names at home, ARNs elsewhere)" }),
        h("input", { id: "freeze-clusters", autocomplete: "off" })),
      h("div", { class: "field" }, h("label", { for: "freeze-services", text: "Services (comma-separated names)" }),
        h("input", { id: "freeze-services", autocomplete: "off" })),
      h("div", { class: "field" }, h("label", { for: "freeze-until", text: "Until (your local time)" }),
        h("input", { id: "freeze-until", type: "datetime-local", required: true, value: local })),
      h("div", { class: "field" }, h("label", { for: "freeze-reason", text: "Reason" }),
        h("input", { id: "freeze-reason", required: true, maxlength: 500, autocomplete: "off" })),
      h("div", { class: "field" }, h("label", { for: "freeze-pushes", text: "Pushes meanwhile" }),
        h("select", { id: "freeze-pushes" }, h("option", { value: "wait", text: "wait for the end" }),
          h("option", { value: "drop", text: "are dropped" }))),
      h("p", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "freeze-create", "data-action": "freeze-create" }, "Freeze")));
    replace($("view"), h("h1", { text: "Freezes" }), list, form);
    let drawn = null;

    const names = (id) => $(id).value.split(",").map((name) => name.trim()).filter(Boolean);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      once("freeze-create", createFreeze);
    });

    async function createFreeze() {
      const scope = {};
      if (names("freeze-clusters").length) scope.clusters = names("freeze-clusters");
      if (names("freeze-services").length) scope.services = names("freeze-services");
      const moment = new Date($("freeze-until").value);
      if (Number.isNaN(moment.getTime())) {
        showMessage("The end of the freeze is not a time.");
        return;
      }
      try {
        const { body } = await api("POST", "freezes", {
          scope, until: moment.toISOString(), reason: $("freeze-reason").value.trim(), pushes: $("freeze-pushes").value,
        });
        announce(`Freeze ${body.id} made: ${scopeText(body.scope)} until ${body.until}.`);
        $("freeze-reason").value = "";
        clearError();
      } catch (error) {
        showError(error);
      }
      drawn = null;
      await refresh();
    }

    async function lift(freeze) {
      const ok = await confirm("Lift the freeze", [h("p", { text: `Lift freeze ${freeze.id} (${scopeText(freeze.scope)}: ${freeze.reason}) now?` })], "Lift it");
      if (!ok) return;
      try {
        await api("DELETE", `freezes/${encodeURIComponent(freeze.id)}`);
        announce(`Freeze ${freeze.id} lifted.`);
        clearError();
      } catch (error) {
        showError(error);
      }
      drawn = null;
      await refresh();
    }

    function draw(answer) {
      const freezes = (answer.freezes || []).filter((freeze) => freeze.active !== false);
      const windows = answer.windows || [];
      replace(list,
        section(`In force (${freezes.length})`, freezes.length ? h("ul", { class: "plain cards" }, freezes.map((freeze) => h("li", { class: "card freeze", "data-freeze": freeze.id },
          h("p", {}, h("strong", { text: scopeText(freeze.scope) }), " until ", when(freeze.until, "until")),
          h("p", { text: freeze.reason }),
          h("p", { class: "muted", text: `by ${freeze.createdBy || "–"} · pushes ${freeze.pushes || "wait"} · ${freeze.id}` }),
          h("p", { class: "actions" }, actionButton(`lift:${freeze.id}`, { class: "danger lift", "data-focus": `lift:${freeze.id}` }, "Lift", () => lift(freeze)))))) : h("p", { class: "empty", text: "No freeze in force." })),
        section(`Windows (${windows.length})`, windows.length ? h("ul", { class: "plain cards" }, windows.map((window) => h("li", { class: `card window${window.appliesNow ? " now" : ""}` },
          h("p", {}, h("strong", { text: window.name }), `: ${scopeText(window.scope)}, ${window.start} to ${window.end} (${window.timezone})`),
          h("p", { text: window.reason || "" }),
          h("p", { class: "muted", text: window.appliesNow ? `Applies now, until ${window.periodEnd}` : `Next from ${window.periodStart} to ${window.periodEnd}` })))) : h("p", { class: "empty", text: "No freeze window in the permissions file." })));
    }

    return {
      name: "freezes",
      async refresh(freezes, current) {
        const answer = (await freezes) || {};
        if (!current()) return false;
        const fresh = JSON.stringify(answer);
        if (fresh !== drawn) {
          drawn = fresh;
          keepingFocus(() => draw(answer));
        } else {
          retime(list);
        }
        return false;
      },
    };
  }

  // ---------- the confirmation dialog ----------

  /** Ask in the modal dialog; true when OK was chosen. With no okLabel it only tells (a refusal): Close, no OK.
   * While the dialog is open, another confirmation is refused (false) rather than stacked on it. */
  function confirm(title, body, okLabel) {
    const dialog = $("confirm");
    if (dialog.open) return Promise.resolve(false);
    $("confirm-title").textContent = title;
    replace($("confirm-body"), body);
    $("confirm-ok").textContent = okLabel || "";
    $("confirm-ok").hidden = !okLabel;
    $("confirm-cancel").textContent = okLabel ? "Cancel" : "Close";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  // ---------- routing ----------

  function route() {
    if (!storedKey()) {
      signedOut();
      return;
    }
    const hash = location.hash || "#/";
    const parts = hash.replace(/^#\/?/, "").split("/");
    clearError();
    announce("");
    $("changes").textContent = "";
    stopPolling();
    let named = null; // the service page's cluster and service, decoded from the address
    if (parts[0] === "service" && parts.length >= 3) {
      try {
        named = [decodeURIComponent(parts[1]), decodeURIComponent(parts.slice(2).join("/"))];
      } catch (error) {
        // A malformed escape (a hand-edited or cut address): the services page, saying why.
        showMessage(`The address ${hash} names no service (${error.message}): here are the services instead.`);
      }
    }
    if (named) {
      page = servicePage(...named);
    } else if (parts[0] === "approvals") {
      page = approvalsPage();
    } else if (parts[0] === "freezes") {
      page = freezesPage();
    } else {
      page = servicesPage();
    }
    for (const link of document.querySelectorAll("nav a[data-page]")) {
      if (link.dataset.page === (page.name === "service" ? "services" : page.name)) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${named ? named[1] : page.name[0].toUpperCase() + page.name.slice(1)} · ECS image updater`;
    refresh();
  }

  window.addEventListener("hashchange", () => {
    route();
    $("main").focus();
  });

  document.addEventListener("DOMContentLoaded", () => {
    $("loading").hidden = true; // the static page's "Loading…": the script runs
    $("sign-in").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (key) signIn(key);
    });
    $("sign-out").addEventListener("click", () => signedOut("Signed out: the key is no longer kept in this tab."));
    $("alert-close").addEventListener("click", () => clearError());
    if (storedKey()) signIn(storedKey());
    else signedOut();
  });
})();
