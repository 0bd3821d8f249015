// Browser test of Loupe's web UI in the system's headless Chromium (Debian's `chromium`,
// driven by playwright-core; no browser is downloaded). Run by clients/python/tests/test_ui.py:
//
//   node ui_test.mjs <loupe base URL> <screenshot dir>
//
// It seeds traces over OTLP/JSON whose span names, prompts, outputs, attributes and tags carry
// HTML and script, then checks in the browser: the list, a search and an invalid search, opening
// a trace, selecting spans, the chat view, keyboard navigation, feedback stored as an
// assessment, and that no script from trace content ever ran while the text stayed visible.
// Exits non-zero with a message on the first failed check; screenshots go to the given dir.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node ui_test.mjs <loupe URL> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const XSS = `<script>window.__xss="script"</script><img src=x onerror="window.__xss='img'">`;
const LINK = "javascript:window.__xss='link'";
const hex = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");
const nowNs = BigInt(Date.now()) * 1_000_000n;
const str = (key, value) => ({ key, value: { stringValue: value } });

// One agent trace (AGENT → TOOL, CHAT_MODEL) carrying hostile text everywhere, and a plain one.
const traceId = hex(32);
const [root, tool, chat] = [hex(16), hex(16), hex(16)];
const plainId = hex(32);
const sessionId = `sess-${hex(6)} ${XSS}`;
const plainName = `plain-trace-${plainId.slice(0, 8)}`;
const span = (id, parent, name, type, startMs, endMs, attrs, status = 1) => ({
  traceId, spanId: id, parentSpanId: parent, name,
  startTimeUnixNano: String(nowNs + BigInt(startMs) * 1_000_000n),
  endTimeUnixNano: String(nowNs + BigInt(endMs) * 1_000_000n),
  attributes: [str("mlflow.spanType", type), ...attrs],
  status: { code: status },
});
const messages = JSON.stringify({
  messages: [
    { role: "system", content: "You help with refunds." },
    { role: "user", content: `I want a refund ${XSS}` },
  ],
});
const completion = JSON.stringify({
  choices: [{ message: { role: "assistant", content: `Refund approved ${XSS} see ${LINK}` } }],
  usage: { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 },
});
const body = {
  resourceSpans: [{
    resource: { attributes: [str("service.name", "ui-test")] },
    scopeSpans: [{ spans: [
      span(root, "", `agent ${XSS}`, "AGENT", 0, 900, [
        str("session.id", sessionId),
        str("mlflow.spanInputs", JSON.stringify({ question: `refund ${XSS}` })),
        str("mlflow.spanOutputs", JSON.stringify({ answer: LINK })),
        str("mlflow.traceTag.team", XSS),
      ]),
      span(tool, root, `lookup_order ${XSS}`, "TOOL", 10, 200, [
        str("mlflow.spanInputs", JSON.stringify({ order: "#123" })),
        str("mlflow.spanOutputs", JSON.stringify({ status: `shipped ${XSS}` })),
        str(`attr ${XSS}`, LINK),
      ], 2),
      span(chat, root, "ChatCompletion", "CHAT_MODEL", 210, 880, [
        str("mlflow.spanInputs", messages),
        str("mlflow.spanOutputs", completion),
        str("mlflow.message.format", "openai"),
        str("gen_ai.request.model", "gpt-4o-mini"),
        { key: "gen_ai.usage.input_tokens", value: { intValue: "21" } },
        { key: "gen_ai.usage.output_tokens", value: { intValue: "9" } },
      ]),
      { ...span(hex(16), "", plainName, "CHAIN", 1000, 1100, []), traceId: plainId },
    ] }],
  }],
};

async function api(path, init) {
  const res = await fetch(base + path, init);
  const text = await res.text();
  assert.ok(res.ok, `${init?.method || "GET"} ${path} -> ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

await api("/v1/traces", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
// Tags set afterwards through the MLflow API (the user-edit path) carry hostile text too.
await api(`/api/2.0/mlflow/traces/tr-${traceId}/tags`, {
  method: "PATCH", headers: { "content-type": "application/json" },
  body: JSON.stringify({ key: `note ${XSS}`, value: LINK }),
});

// Two evaluation runs over the same two inputs, seeded through the MLflow REST API as the mlflow
// client logs them: runs with metrics, traces (StartTraceV3) filed under each run, and feedback.
const post = (path, payload, method = "POST") =>
  api(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
const { experiment_id: runsExperiment } = await post("/api/2.0/mlflow/experiments/create", { name: `ui-runs-${hex(6)}` });
const runsProject = (await api(`/api/2.0/mlflow/experiments/get?experiment_id=${runsExperiment}`)).experiment.name;
const evalRun = async (name, accuracy, answers, verdicts) => {
  const { run } = await post("/api/2.0/mlflow/runs/create", { experiment_id: runsExperiment, run_name: name, start_time: Date.now() });
  const runId = run.info.run_id;
  await post("/api/2.0/mlflow/runs/log-batch", { run_id: runId, metrics: [{ key: "accuracy/mean", value: accuracy, timestamp: Date.now(), step: 0 }] });
  for (const [i, answer] of answers.entries()) {
    const id = hex(32);
    await post("/api/3.0/mlflow/traces", { trace: { trace_info: {
      trace_id: `tr-${id}`, trace_location: { type: "MLFLOW_EXPERIMENT", mlflow_experiment: { experiment_id: runsExperiment } },
      request_time: new Date().toISOString(), execution_duration: "0.1s", state: "OK",
      trace_metadata: { "mlflow.sourceRun": runId, "mlflow.traceInputs": JSON.stringify({ question: `question ${i}` }), "mlflow.traceOutputs": JSON.stringify(answer) },
    } } });
    await post(`/api/3.0/mlflow/traces/tr-${id}/assessments`, { assessment: {
      assessment_name: "correct", trace_id: `tr-${id}`, source: { source_type: "CODE", source_id: "exact" },
      feedback: { value: verdicts[i] }, metadata: { "mlflow.assessment.sourceRunId": runId },
    } });
  }
  await post("/api/2.0/mlflow/runs/update", { run_id: runId, status: "FINISHED", end_time: Date.now() });
  return runId;
};
const runA = await evalRun(`baseline ${XSS}`, 0.5, ["42", `maybe ${XSS}`], [true, false]);
const runB = await evalRun("tuned", 1.0, ["42", "43"], [true, true]);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
let step = "start";
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  page.on("dialog", (d) => { problems.push(`dialog opened: ${d.message()}`); d.dismiss(); });
  const noScriptRan = async () => assert.equal(await page.evaluate(() => window.__xss), undefined, `${step}: trace content ran as script`);
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  step = "list";
  await page.goto(base + "/");
  await page.waitForSelector(`tr[data-trace-id="${traceId}"]`);
  await page.waitForSelector(`tr[data-trace-id="${plainId}"]`);
  const row = page.locator(`tr[data-trace-id="${traceId}"]`);
  assert.match(await row.innerText(), /agent <script>window\.__xss="script"<\/script><img src=x onerror=/);
  assert.match(await row.locator("td.model").innerText(), /gpt-4o-mini/);
  assert.match(await row.locator("td.tags").innerText(), /note <script>/);
  assert.equal(await page.locator("img").count(), 0, "no <img> from trace content reached the DOM");
  await noScriptRan();
  await shot("1-list");

  step = "live tail";
  // A trace sent while the list is open appears without a reload.
  const liveId = hex(32);
  await api("/v1/traces", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [
      { ...span(hex(16), "", `live ${XSS}`, "CHAIN", 0, 50, []), traceId: liveId }] }] }] }) });
  await page.waitForSelector(`tr[data-trace-id="${liveId}"]`, { timeout: 15_000 });
  assert.match(await page.locator(`tr[data-trace-id="${liveId}"]`).innerText(), /live <script>/);
  await noScriptRan();

  step = "search";
  await page.fill("input[name=q]", `name = '${plainName}'`);
  await page.click("form.search button[type=submit]");
  await page.waitForURL(/q=/);
  assert.equal(await page.locator("table.traces tbody tr").count(), 1);
  assert.equal(await page.locator(`tr[data-trace-id="${plainId}"]`).count(), 1);
  await page.fill("input[name=q]", "status = ");
  await page.click("form.search button[type=submit]");
  await page.waitForSelector("#query-error");
  assert.match(await page.locator("#query-error").innerText(), /position 9/);
  await shot("2-search-error");

  step = "open trace";
  await page.goto(base + "/");
  await page.click(`tr[data-trace-id="${traceId}"] td.name a`);
  await page.waitForURL(new RegExp(`/traces/${traceId}`));
  await page.waitForSelector("#span-tree li[role=treeitem]");
  assert.equal(await page.locator("#span-tree li[role=treeitem]").count(), 3);
  assert.equal(await page.locator("#span-tree svg.bar rect").count(), 3, "one timeline bar per span");
  assert.match(await page.locator("section.summary").innerText(), /30 total/);
  await noScriptRan();
  await shot("3-trace");

  step = "expand a span";
  await page.click(`li[data-span-id="${tool}"] > .row a.span-link`);
  await page.waitForSelector(`#span-detail article[data-span-id="${tool}"]`);
  const detail = await page.locator("#span-detail").innerText();
  assert.match(detail, /shipped <script>window\.__xss=\\?"script\\?"<\/script>/);
  assert.match(await page.locator("#span-detail table.attrs").textContent(), /attr <script>/, "attribute keys kept as text");
  assert.equal(await page.locator(`li[data-span-id="${tool}"]`).getAttribute("aria-selected"), "true");
  assert.equal(await page.locator("#span-detail a[href^='javascript:']").count(), 0, "no javascript: links");
  await noScriptRan();
  await shot("4-span");

  step = "chat";
  await page.click(`li[data-span-id="${chat}"] > .row a.span-link`);
  await page.waitForSelector(`#span-detail article[data-span-id="${chat}"] section.chat`);
  const roles = await page.locator("#span-detail .chat .role").allInnerTexts();
  assert.deepEqual(roles.map((r) => r.toLowerCase()), ["system", "user", "assistant"]);
  assert.match(await page.locator("#span-detail .chat").innerText(), /Refund approved <script>/);
  await noScriptRan();
  await shot("5-chat");

  step = "keyboard";
  await page.focus(`li[data-span-id="${chat}"]`);
  await page.keyboard.press("ArrowUp");
  await page.waitForSelector(`li[data-span-id="${tool}"][aria-selected=true]`);
  await page.keyboard.press("Home");
  await page.waitForSelector(`li[data-span-id="${root}"][aria-selected=true]`);
  await page.keyboard.press("ArrowLeft");
  assert.equal(await page.locator(`li[data-span-id="${root}"]`).getAttribute("aria-expanded"), "false");
  assert.ok(!(await page.locator(`li[data-span-id="${tool}"]`).isVisible()), "collapsed children are hidden");
  await page.keyboard.press("ArrowRight");
  assert.ok(await page.locator(`li[data-span-id="${tool}"]`).isVisible());

  step = "feedback";
  await page.check("form.feedback input[value=up]");
  await page.fill("form.feedback textarea", `Great answer <b>bold</b> ${XSS}`);
  await Promise.all([page.waitForURL(/#assessments$/), page.click("form.feedback button[type=submit]")]);
  const item = page.locator("section.assessments li.assessment");
  assert.equal(await item.count(), 1);
  assert.match(await item.innerText(), /user_feedback feedback: true — Great answer <b>bold<\/b> <script>/);
  await noScriptRan();
  const stored = await api(`/api/v1/traces/${traceId}`);
  const fb = stored.assessments.find((a) => a.name === "user_feedback");
  assert.ok(fb, "feedback stored as an assessment");
  assert.equal(fb.value, true);
  assert.equal(fb.source.source_type, "HUMAN");
  assert.match(fb.rationale, /Great answer <b>bold<\/b>/);
  await shot("6-feedback");

  step = "session";
  await page.click("section.summary dd a[href^='/sessions/']");
  await page.waitForSelector(`article.turn[data-trace-id="${traceId}"]`);
  assert.match(await page.locator("h1").innerText(), /Session sess-.* <script>/);
  assert.match(await page.locator("article.turn").innerText(), /refund <script>/);
  await noScriptRan();
  await shot("6b-session");

  step = "dashboard";
  await page.goto(base + "/dashboard");
  await page.waitForSelector("figure.chart svg circle");
  assert.ok(await page.locator("figure.chart").count() >= 5, "volume, errors, latency, tokens, cost charts");
  assert.ok(await page.locator("figure.chart svg circle").count() >= 5, "data points drawn");
  assert.match(await page.locator("table.models").innerText(), /gpt-4o-mini/);
  await shot("6c-dashboard");
  const badRange = await fetch(base + "/dashboard?range=forever");
  assert.equal(badRange.status, 400);
  assert.match(await badRange.text(), /unknown range/);

  step = "big trace";
  // 50,000 spans: a root, 100 children, the rest under them.
  const bigId = hex(32);
  const ids = Array.from({ length: 50_000 }, () => hex(16));
  const bigSpans = ids.map((id, i) => ({
    traceId: bigId, spanId: id, parentSpanId: i === 0 ? "" : i <= 100 ? ids[0] : ids[1 + (i % 100)],
    name: `step-${i}`, startTimeUnixNano: String(nowNs + BigInt(i) * 1000n),
    endTimeUnixNano: String(nowNs + BigInt(i) * 1000n + 500_000n),
    attributes: [str("mlflow.spanType", i ? "TOOL" : "AGENT"), str("mlflow.spanInputs", JSON.stringify({ q: "x".repeat(200) }))],
    status: { code: 1 },
  }));
  for (let k = 0; k < bigSpans.length; k += 10_000) {
    await api("/v1/traces", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: bigSpans.slice(k, k + 10_000) }] }] }) });
  }
  const t0 = Date.now();
  await page.goto(`${base}/traces/${bigId}`);
  await page.waitForSelector("#span-tree li[role=treeitem]");
  const openMs = Date.now() - t0;
  console.log(`ui: a 50,000-span trace opened in ${openMs} ms (navigation to a rendered tree)`);
  assert.ok(openMs < 5_000, `a 50,000-span trace took ${openMs} ms to open`);
  assert.ok(await page.locator("#span-tree li[role=treeitem]").count() <= 2_100, "rows are capped");
  const more = page.locator("li.more a").first();
  await Promise.all([page.waitForURL(/focus=/), more.click()]);
  await page.waitForSelector("#span-tree li[role=treeitem]");
  await shot("6d-big-trace");
  await page.goto(`${base}/traces/${traceId}`);

  step = "runs";
  await page.goto(`${base}/runs?project=${encodeURIComponent(runsProject)}`);
  await page.waitForSelector(`input[name=ids][value="${runA}"]`);
  assert.match(await page.locator("table.traces").first().innerText(), /baseline <script>/, "a run name is shown as text");
  await page.check(`input[name=ids][value="${runA}"]`);
  await page.check(`input[name=ids][value="${runB}"]`);
  await Promise.all([page.waitForURL(/\/runs\/compare\?/), page.click("button:has-text('Compare selected')")]);
  const metricRow = page.locator("table.compare tr", { hasText: "accuracy/mean" });
  assert.equal(await metricRow.getAttribute("class"), "diff", "a metric that differs is marked");
  const perInput = page.locator("table.compare").nth(1);
  assert.equal(await perInput.locator("tbody tr").count(), 2, "one row per input, matched across runs");
  const second = perInput.locator("tbody tr", { hasText: "question 1" });
  assert.match(await second.innerText(), /maybe <script>/);
  assert.equal(await second.locator("td.diff").count(), 2, "outputs that differ are marked");
  assert.equal(await second.locator(".chip.diff").count(), 2, "scores that differ are marked");
  const first = perInput.locator("tbody tr", { hasText: "question 0" });
  assert.equal(await first.locator("td.diff, .chip.diff").count(), 0, "what is the same is not marked");
  await noScriptRan();
  await shot("9-compare-runs");
  await page.goto(`${base}/traces/${traceId}`);

  step = "dark theme";
  await page.emulateMedia({ colorScheme: "dark" });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, "rgb(255, 255, 255)", "dark theme follows prefers-color-scheme");
  await shot("7-dark");

  step = "laptop width";
  await page.setViewportSize({ width: 1024, height: 700 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 1024 px (overflow ${overflow}px)`);
  await shot("8-laptop");

  await noScriptRan();
  assert.deepEqual(problems, [], "no page errors, console errors or dialogs");
  console.log(`ui: every check passed; screenshots in ${shots}`);
} catch (e) {
  console.error(`ui: failed at step "${step}": ${e.message}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
