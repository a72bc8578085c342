// Vivarium console: the few things the pages cannot do as plain HTML. Every change goes to
// the JSON API with the session's CSRF token; errors are shown beside the field the API
// names. Text from the server is only ever set as textContent, never parsed as markup.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  document.documentElement.classList.add("js");

  // ---- talking to the API ------------------------------------------------------------

  async function api(method, url, body, isForm) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    let payload;
    if (isForm) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    } catch (error) {
      return { ok: false, status: 0, data: { message: `The service could not be reached: ${error.message}` } };
    }
    return { ok: response.ok, status: response.status, data: await readJson(response) };
  }

  async function readJson(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return { message: text };
    }
  }

  function clearErrors(scope) {
    for (const slot of document.querySelectorAll("[data-form-error]")) slot.textContent = "";
    for (const slot of scope.querySelectorAll("[data-error-for]")) slot.textContent = "";
    for (const input of scope.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  // Shows the API's message beside the field it names, else at the top of the form.
  function showError(scope, answer) {
    clearErrors(scope);
    const message = answer.data?.message ?? `The request failed (HTTP ${answer.status}).`;
    const field = answer.data?.field;
    const slot = field ? scope.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
    const target = slot ?? scope.querySelector("[data-form-error]") ?? document.querySelector("[data-form-error]");
    if (target) {
      target.textContent = message;
      target.scrollIntoView({ block: "nearest" });
    } else {
      window.alert(message);
    }
    if (slot) {
      const input = scope.querySelector(`[name="${CSS.escape(field)}"]`);
      input?.setAttribute("aria-invalid", "true");
      input?.focus();
    }
  }

  function after(then, answer) {
    if (then === "reload") {
      window.location.reload();
    } else if (then?.startsWith("go:")) {
      window.location.assign(then.slice(3));
    } else if (then === "token") {
      showToken(answer.data?.token ?? "");
    }
  }

  // A new or rotated token, shown this once.
  function showToken(token) {
    const panel = document.getElementById("token-panel");
    if (!panel) return;
    document.getElementById("token-value").textContent = token;
    panel.hidden = false;
    panel.scrollIntoView({ block: "start" });
    if (!panel.querySelector("[data-done]")) {
      const done = document.createElement("button");
      done.type = "button";
      done.dataset.done = "";
      done.textContent = "I have copied it";
      done.addEventListener("click", () => window.location.reload());
      panel.append(done);
    }
  }

  // ---- buttons and forms that call the API -------------------------------------------

  function buttonBody(button) {
    if (button.dataset.bodyRemoveGrant) return { remove: [JSON.parse(button.dataset.bodyRemoveGrant)] };
    if (button.dataset.bodyRemoveUser) return { remove_users: [button.dataset.bodyRemoveUser] };
    return undefined;
  }

  for (const button of document.querySelectorAll("[data-api]")) {
    button.addEventListener("click", async () => {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      const [method, url] = button.dataset.api.split(" ");
      button.disabled = true;
      const answer = await api(method, url, buttonBody(button));
      button.disabled = false;
      const scope = button.closest("section, form, main") ?? document.body;
      if (answer.ok) after(button.dataset.then, answer);
      else showError(scope, answer);
    });
  }

  function fields(form) {
    const values = {};
    for (const [name, value] of new FormData(form)) values[name] = value;
    return values;
  }

  async function submitJson(form, method, url, body, then) {
    const button = form.querySelector('[type="submit"]');
    if (button) button.disabled = true;
    const answer = await api(method, url, body);
    if (button) button.disabled = false;
    if (answer.ok) after(then, answer);
    else showError(form, answer);
  }

  for (const form of document.querySelectorAll("[data-api-form]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const [method, url] = form.dataset.apiForm.split(" ");
      submitJson(form, method, url, fields(form), form.dataset.then);
    });
  }

  for (const form of document.querySelectorAll(".grant-form")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const { verb, resource, object } = fields(form);
      submitJson(form, "PUT", form.dataset.roleUrl, { add: [{ verb, resource, object }] }, "reload");
    });
  }

  for (const form of document.querySelectorAll(".member-form")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitJson(form, "PUT", form.dataset.roleUrl, { add_users: [fields(form).email] }, "reload");
    });
  }

  const secretForm = document.getElementById("secret-form");
  secretForm?.addEventListener("submit", (event) => {
    event.preventDefault();
    const { name, value } = fields(secretForm);
    const url = `/api/${secretForm.dataset.org}/actions/${secretForm.dataset.id}/secrets/${encodeURIComponent(name)}`;
    submitJson(secretForm, "PUT", url, { value }, "reload");
  });

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy)?.textContent ?? "";
      const status = document.getElementById("copy-status");
      try {
        await navigator.clipboard.writeText(text);
        if (status) status.textContent = "Copied.";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        if (status) status.textContent = "Selected: press Ctrl+C to copy.";
      }
    });
  }

  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // ---- the actions list: select and delete -------------------------------------------

  const bulk = document.getElementById("bulk-delete");
  if (bulk) {
    const boxes = () => [...document.querySelectorAll('input[name="ids"]')];
    const chosen = () => boxes().filter((box) => box.checked);
    const refresh = () => {
      bulk.disabled = chosen().length === 0;
      bulk.textContent = chosen().length ? `Delete selected (${chosen().length})` : "Delete selected";
    };
    for (const box of boxes()) box.addEventListener("change", refresh);
    document.getElementById("select-all")?.addEventListener("change", (event) => {
      for (const box of boxes()) box.checked = event.target.checked;
      refresh();
    });
    bulk.addEventListener("click", async () => {
      const picked = chosen();
      const names = picked.map((box) => box.dataset.name).join(", ");
      if (!window.confirm(`Delete ${picked.length} action(s): ${names}? Their history goes too; this cannot be undone.`)) return;
      const answer = await api("DELETE", `/api/${bulk.dataset.org}/actions/bulk`, { ids: picked.map((box) => box.value) });
      if (answer.ok) window.location.reload();
      else showError(document.body, answer);
    });
  }

  // ---- the action form ---------------------------------------------------------------

  function debounce(work, wait) {
    let timer;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => work(...args), wait);
    };
  }

  async function check(kind, value) {
    const response = await fetch(`/console/check/${kind}?value=${encodeURIComponent(value)}`, { credentials: "same-origin" });
    return response.ok ? response.json() : { ok: false, message: `The check failed (HTTP ${response.status}).` };
  }

  const actionForm = document.getElementById("action-form");
  if (actionForm) setUpActionForm(actionForm);

  function setUpActionForm(form) {
    const name = form.querySelector("#name");
    const nameError = form.querySelector("#name-error");
    name.addEventListener("input", debounce(async () => {
      const verdict = await check("name", name.value);
      nameError.textContent = verdict.ok ? "" : verdict.message;
      name.toggleAttribute("aria-invalid", !verdict.ok);
    }, 200));

    const schedule = form.querySelector("#schedule");
    const kind = () => form.querySelector('input[name="execution_details"]:checked')?.value ?? "service";
    const showSchedule = () => { schedule.hidden = kind() === "service"; };
    for (const radio of form.querySelectorAll('input[name="execution_details"]')) radio.addEventListener("change", showSchedule);
    showSchedule();

    const cron = form.querySelector("#cron_expr");
    const preview = form.querySelector("#cron-preview");
    const previewCron = async () => {
      preview.replaceChildren();
      if (!cron.value.trim()) return;
      const verdict = await check("cron", cron.value);
      if (!verdict.ok) {
        preview.textContent = verdict.message;
        return;
      }
      const title = document.createElement("span");
      title.textContent = "Next firings (UTC):";
      const list = document.createElement("ul");
      for (const firing of verdict.firings) {
        const item = document.createElement("li");
        item.textContent = firing;
        list.append(item);
      }
      preview.append(title, list);
    };
    cron.addEventListener("input", debounce(previewCron, 250));
    previewCron();

    const rows = form.querySelector("#env-rows");
    const template = document.getElementById("env-row");
    form.querySelector("#add-env").addEventListener("click", () => {
      rows.append(template.content.cloneNode(true));
      rows.lastElementChild.querySelector(".env-key").focus();
    });
    rows.addEventListener("click", (event) => {
      if (event.target.classList.contains("remove-row")) event.target.closest("tr").remove();
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveAction(form, kind());
    });
  }

  function actionSettings(form, kind) {
    const environment = {};
    for (const row of form.querySelectorAll("#env-rows tr")) {
      const key = row.querySelector(".env-key").value.trim();
      if (key) environment[key] = row.querySelector(".env-value").value;
    }
    const hosts = form.querySelector("#allowed_hosts").value.split("\n").map((h) => h.trim()).filter(Boolean);
    const settings = {
      name: form.querySelector("#name").value,
      description: form.querySelector("#description").value,
      execution_details: kind,
      environment_variables: environment,
      allowed_hosts: hosts,
    };
    const account = form.querySelector("#service_account").value.trim();
    if (account) settings.service_account = account;
    const cron = form.querySelector("#cron_expr").value.trim();
    if (kind !== "service" && cron) settings.cron_expr = cron;
    return settings;
  }

  async function saveAction(form, kind) {
    const settings = actionSettings(form, kind);
    const file = form.querySelector("#file").files[0];
    const id = form.dataset.id;
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    let answer;
    if (file || !id) {
      const data = new FormData();
      if (file) data.append("file", file, file.name);
      if (id) data.append("id", id);
      for (const [key, value] of Object.entries(settings)) {
        data.append(key, typeof value === "string" ? value : JSON.stringify(value));
      }
      answer = await api("POST", `/api/${form.dataset.org}/actions/upload`, data, true);
    } else {
      answer = await api("PUT", `/api/${form.dataset.org}/actions/${id}`, settings);
    }
    button.disabled = false;
    if (!answer.ok) {
      showError(form, answer);
      return;
    }
    const saved = answer.data?.uuid ?? id;
    window.location.assign(`/console/orgs/${encodeURIComponent(form.dataset.org)}/actions/${saved}`);
  }

  // ---- streamed runs -----------------------------------------------------------------

  function logItem(line) {
    const item = document.createElement("li");
    item.className = line.level ?? "";
    const level = document.createElement("span");
    level.className = "level";
    level.textContent = line.level ?? "";
    const logger = document.createElement("span");
    logger.className = "logger";
    logger.textContent = line.logger ?? "";
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = line.message ?? "";
    item.append(level, " ", logger, " ", message);
    return item;
  }

  // Reads a server-sent-events body, calling `onEvent(name, data)` for each event.
  async function readEvents(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  const testForm = document.getElementById("test-run");
  testForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const recordsError = document.getElementById("records-error");
    clearErrors(testForm);
    let inputs;
    try {
      inputs = JSON.parse(document.getElementById("records").value);
    } catch (error) {
      recordsError.textContent = `The records are not valid JSON: ${error.message}`;
      return;
    }
    const output = document.getElementById("test-output");
    const logs = document.getElementById("test-logs");
    const facts = document.getElementById("test-facts");
    const result = document.getElementById("test-result");
    logs.replaceChildren();
    result.textContent = "";
    facts.textContent = "Running…";
    output.hidden = false;
    const button = document.getElementById("run-test");
    button.disabled = true;
    try {
      const response = await fetch(testForm.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRF-Token": csrf },
        body: JSON.stringify({ inputs }),
      });
      if (!response.ok) {
        facts.textContent = "";
        output.hidden = true;
        showError(testForm, { status: response.status, data: await readJson(response) });
        return;
      }
      await readEvents(response, (name, data) => {
        if (name === "log") logs.append(logItem(data));
        else if (name === "result") showAnswer(data, facts, result);
        else if (name === "error") facts.textContent = `The run was not performed: ${data.message}`;
      });
    } catch (error) {
      facts.textContent = `The run's stream broke off: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });

  function showAnswer(answer, facts, result) {
    facts.replaceChildren();
    const outcome = document.createElement("span");
    outcome.className = `badge ${answer.outcome}`;
    outcome.id = "test-outcome";
    outcome.textContent = answer.outcome;
    const numbers = document.createElement("span");
    const memory = (answer.peak_memory_bytes / (1024 * 1024)).toFixed(1);
    numbers.textContent = ` ${answer.duration_ms.toFixed(1)} ms · ${answer.fuel_used} fuel · ${memory} MiB peak memory · `;
    const link = document.createElement("a");
    link.href = testForm.dataset.runBase + answer.run_id;
    link.textContent = "open the run";
    facts.append(outcome, numbers, link);
    if (answer.error) {
      result.textContent = `${answer.error.type}: ${answer.error.message}\n\n${(answer.error.traceback ?? []).join("\n")}`;
    } else {
      result.textContent = JSON.stringify(answer.result, null, 2);
    }
  }

  const liveLogs = document.querySelector("[data-live-logs]");
  if (liveLogs) {
    const source = new EventSource(liveLogs.dataset.liveLogs);
    const status = document.getElementById("live-status");
    source.addEventListener("log", (event) => liveLogs.append(logItem(JSON.parse(event.data))));
    source.addEventListener("end", () => {
      source.close();
      window.location.reload();
    });
    source.addEventListener("missed", (event) => {
      const missed = JSON.parse(event.data).missed;
      liveLogs.append(logItem({ level: "WARNING", logger: "console", message: `${missed} lines skipped; the record will have them` }));
    });
    // A named `error` event carries data (the run was not performed); a bare one is the
    // connection failing, after which the page reloads rather than replaying the lines.
    source.addEventListener("error", (event) => {
      source.close();
      if (event.data) status.textContent = `The run was not performed: ${JSON.parse(event.data).message}`;
      else window.location.reload();
    });
  }

})();
