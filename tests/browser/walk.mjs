// The console's browser test: starts `pactgate demo --console`, drives each console it serves in
// headless Chromium (Debian's package), visits every page
// the menu offers and sends each page's forms, takes a screenshot of each into docs/console/,
// runs axe-core with the WCAG 2.1 A and AA rules (zero violations allowed), and walks the
// console with the keyboard only (Tab, Enter), checking that focus is always visible.
//
// Usage: node tests/browser/walk.mjs [path/to/pactgate]   (from the repository root)
import { spawn } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const SHOTS = path.join(ROOT, 'docs', 'console');
const BIN = process.argv[2] || path.join(ROOT, 'target', 'debug', 'pactgate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
// A number that passes the 11-proef: no page, URL or answer may ever hold it.
const BSN = '111222333';

const failures = [];
const fail = (what) => { failures.push(what); console.error(`FAIL ${what}`); };

/** Starts the demo with its consoles; resolves with their addresses once both are printed. */
function startDemo() {
  const demo = spawn(BIN, ['demo', '--console'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const consoles = {};
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no console address in 300 s:\n${out}`)), 300_000);
    demo.on('exit', (code) => reject(new Error(`the demo ended (${code}) before its consoles:\n${out}`)));
    demo.stdout.on('data', (chunk) => {
      out += chunk;
      for (const m of out.matchAll(/console (\S+)\s.*?(http:\/\/127\.0\.0\.1:\d+\/)/g)) consoles[m[1]] = m[2];
      if (out.includes('Ctrl-C stops the consoles')) {
        clearTimeout(timer);
        resolve({ demo, consoles });
      }
    });
  });
}

async function axeCheck(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(
    (tags) => globalThis.axe.run(document, { runOnly: { type: 'tag', values: tags } }),
    TAGS,
  );
  for (const v of result.violations) {
    fail(`${name}: axe ${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }
  console.log(`  ${name}: ${result.violations.length} axe violations, ${result.passes.length} rules passed`);
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Visits `url`, checks it, screenshots it; returns the menu's links. */
async function visit(page, url, name) {
  const answer = await page.goto(url, { waitUntil: 'load' });
  if (!answer.ok()) fail(`${name}: ${url} answered ${answer.status()}`);
  const html = await page.content();
  if (html.includes(BSN)) fail(`${name}: the page holds the BSN`);
  await axeCheck(page, name);
  await shoot(page, name);
  return page.$$eval('nav a', (as) => as.map((a) => ({ href: a.href, label: a.textContent.trim() })));
}

/** The forms the walk sends on a page: [selector of the form, fields to fill, screenshot name]. */
const FORMS = {
  '/signaleringslijst': [
    ['form#klok-partners', {}, 'signaleringslijst-partners'],
    ['form#leerling-zoeken', { bsn: BSN }, 'leerling-opgezocht'],
  ],
  '/navragen': [['form#navragen', { gemeente: 'GM0014' }, 'navragen-antwoord']],
  '/privacy/inzage': [['form#inzage', { bsn: BSN }, 'inzagerapport']],
};

/** The form the keyboard walk fills and sends (Tab to the field, type, Enter): the first of
 * these whose page the menu offers (the FG's console: the BSN form of the access report). */
const KEYBOARD_FORMS = [
  ['/privacy/inzage', 'bsn', BSN],
  ['/signaleringslijst', 'bsn', BSN],
  ['/navragen', 'gemeente', 'GM0014'],
];

async function sendForms(page, base, pathName, who) {
  for (const [selector, fields, name] of FORMS[pathName] || []) {
    await page.goto(base + pathName.slice(1), { waitUntil: 'load' });
    if (!(await page.$(selector))) { fail(`${who}${pathName}: no form ${selector}`); continue; }
    for (const [field, value] of Object.entries(fields)) await page.type(`${selector} [name="${field}"]`, value);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.$eval(selector, (f) => f.requestSubmit())]);
    if (page.url().includes(BSN)) fail(`${who}: the BSN is in the URL ${page.url()}`);
    if ((await page.content()).includes(BSN)) fail(`${who}: the page after the form holds the BSN`);
    const alert = await page.$eval('[role="alert"]', (el) => el.textContent).catch(() => null);
    if (alert) fail(`${who}${pathName}: the form was refused: ${alert}`);
    await axeCheck(page, `${who}-${name}`);
    await shoot(page, `${who}-${name}`);
  }
}

/** The focused element is visible: it has an outline or a box-shadow, and a size. */
async function focusVisible(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { ok: false, what: 'nothing focused' };
    const style = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    const marked = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
    const what = `${el.tagName.toLowerCase()} "${(el.textContent || el.name || '').trim().slice(0, 40)}"`;
    return { ok: marked && rect.width > 0 && rect.height > 0, what, href: el.href || '' };
  });
}

/** Tabs until the focused link points at `href` (at most 60 presses), checking focus each time. */
async function tabTo(page, href, who) {
  for (let i = 0; i < 60; i += 1) {
    await page.keyboard.press('Tab');
    const focus = await focusVisible(page);
    if (!focus.ok) fail(`${who}: keyboard focus not visible on ${focus.what}`);
    if (focus.href === href) return true;
  }
  fail(`${who}: Tab never reaches ${href}`);
  return false;
}

async function keyboardWalk(page, base, links, who) {
  await page.goto(base, { waitUntil: 'load' });
  await page.keyboard.press('Tab');
  const first = await focusVisible(page);
  if (!first.what.includes('Naar de inhoud')) fail(`${who}: the first Tab does not reach the skip link (${first.what})`);
  if (!first.ok) fail(`${who}: the skip link's focus is not visible`);
  for (const link of links) {
    await page.goto(base, { waitUntil: 'load' });
    if (!(await tabTo(page, link.href, `${who} ${link.label}`))) continue;
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    if (page.url() !== link.href) fail(`${who}: Enter on ${link.label} led to ${page.url()}`);
  }
  // A form, with the keyboard only: Tab to the field, type, Enter.
  const hit = KEYBOARD_FORMS.map(([p, field, value]) => [links.find((l) => new URL(l.href).pathname === p), field, value])
    .find(([link]) => link);
  if (!hit) { fail(`${who}: no form for the keyboard walk`); return; }
  const [formLink, field, value] = hit;
  await page.goto(formLink.href, { waitUntil: 'load' });
  for (let i = 0; i < 80; i += 1) {
    await page.keyboard.press('Tab');
    const focus = await focusVisible(page);
    if (!focus.ok) fail(`${who}: keyboard focus not visible on ${focus.what}`);
    if (await page.evaluate((f) => document.activeElement?.name === f, field)) break;
  }
  if (!(await page.evaluate((f) => document.activeElement?.name === f, field))) { fail(`${who}: Tab never reaches the ${field} field`); return; }
  await page.keyboard.type(value);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
  if (page.url().includes(BSN) || (await page.content()).includes(BSN)) fail(`${who}: the BSN shows after the keyboard form`);
  const answered = await page.evaluate(() => !document.querySelector('[role="alert"]'));
  if (!answered) fail(`${who}: the form sent with the keyboard was refused`);
  console.log(`  ${who}: keyboard walk reached ${links.length} pages and sent the ${field} form`);
}

/** The console of a case's participant (its own node): driven only by the case walk. */
const PARTICIPANT = 'wij';
/** WIJ Groningen's OIN: the participant Leerplicht asks into the case. */
const WIJ_OIN = '00000099000000000005';

/** After a form or a link: no BSN in the URL or page, no refusal, axe, a screenshot. */
async function checkPage(page, name) {
  if (page.url().includes(BSN)) fail(`${name}: the BSN is in the URL ${page.url()}`);
  if ((await page.content()).includes(BSN)) fail(`${name}: the page holds the BSN`);
  const alert = await page.$eval('[role="alert"]', (el) => el.textContent).catch(() => null);
  if (alert) fail(`${name}: refused: ${alert}`);
  await axeCheck(page, name);
  await shoot(page, name);
}

/** Clicks `selector` and waits for the page it leads to. */
async function follow(page, selector) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
}

/** The ids of the forms in the section of case `caseId` on a Casussen page. */
async function caseForms(page, caseId) {
  return page.evaluate((id) => {
    const head = [...document.querySelectorAll('h3')].find((h) => h.textContent.includes(id));
    return head ? [...head.closest('section').querySelectorAll('form')].map((f) => f.id) : [];
  }, caseId);
}

/** A child's page from the due list, a case opened for it at Leerplicht, accepted and given a
 * care offer at the participant's console (its own node), closed at Leerplicht. */
async function caseWalk(browser, lp, participant) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(`${lp}signaleringslijst`, { waitUntil: 'load' });
  const child = await page.$eval('table a[href^="/leerling/"]', (a) => a.getAttribute('href')).catch(() => null);
  if (!child) { fail('leerplicht: no child on the due list links to its page'); await page.close(); return; }
  await follow(page, `table a[href="${child}"]`);
  await checkPage(page, 'leerplicht-leerling');
  await follow(page, 'a[href^="/casussen?leerling="]');
  await page.select('#overleg_doel', 'werkgroep-verdiepend-verzuim:verzuimaanpak');
  await page.click(`input[name="deelnemer"][value="${WIJ_OIN}"]`);
  await shoot(page, 'leerplicht-casus-openen');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.$eval('#casus-openen-form', (f) => f.requestSubmit())]);
  await checkPage(page, 'leerplicht-casus-geopend');
  const said = await page.$eval('[role="status"]', (el) => el.textContent).catch(() => '');
  const caseId = (said.match(/case-[0-9a-f]{16}/) || [])[0];
  if (!caseId) { fail(`leerplicht: no case opened (${said})`); await page.close(); return; }
  console.log(`  case walk: ${caseId} opened at Leerplicht`);

  await page.goto(`${participant}casussen`, { waitUntil: 'load' });
  let forms = await caseForms(page, caseId);
  const decide = forms.find((f) => f.endsWith('-besluit'));
  if (!decide) { fail(`${PARTICIPANT}: case ${caseId} has no accept form (${forms})`); await page.close(); return; }
  await follow(page, `#${decide} button[value="accepteren"]`);
  await checkPage(page, `${PARTICIPANT}-casus-geaccepteerd`);
  forms = await caseForms(page, caseId);
  const offer = forms.find((f) => /^zorgaanbod-\d+$/.test(f));
  if (!offer) { fail(`${PARTICIPANT}: case ${caseId} has no offer form`); await page.close(); return; }
  const today = new Date().toISOString().slice(0, 10);
  await page.$eval(`#${offer}-plek`, (el, v) => { el.value = v; }, today);
  await page.click(`#${offer}-ouders`);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.$eval(`#${offer}`, (f) => f.requestSubmit())]);
  await checkPage(page, `${PARTICIPANT}-zorgaanbod`);
  const recorded = await page.$eval('[role="status"]', (el) => el.textContent).catch(() => '');
  if (!recorded.includes('Zorgaanbod vastgelegd')) fail(`${PARTICIPANT}: the offer was not recorded (${recorded})`);

  await page.goto(`${lp}casussen`, { waitUntil: 'load' });
  const close = (await caseForms(page, caseId)).find((f) => f.endsWith('-sluiten'));
  if (!close) { fail(`leerplicht: case ${caseId} has no close form`); await page.close(); return; }
  await follow(page, `#${close} button`);
  await checkPage(page, 'leerplicht-casus-gesloten');
  const closed = await page.$eval('[role="status"]', (el) => el.textContent).catch(() => '');
  if (!closed.includes('gesloten')) fail(`leerplicht: the case was not closed (${closed})`);
  console.log(`  case walk: accepted and given an offer at ${PARTICIPANT}, closed at Leerplicht`);
  await page.close();
}

// The FG's pages beyond the menu (issue 13): an audit entry's detail with its proof, reached
// from the audit log with the keyboard only, and the export form's download.

/** Tabs from the audit log to the first entry's link, opens it with Enter, checks the page. */
async function entryProof(page, base, who) {
  await page.goto(`${base}privacy/auditlog`, { waitUntil: 'load' });
  const href = await page.$eval('a[href^="/privacy/auditlog/"]', (a) => a.href).catch(() => null);
  if (!href) { fail(`${who}: the audit log links no entry`); return; }
  if (!(await tabTo(page, href, `${who} entry`))) return;
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
  if (page.url() !== href) { fail(`${who}: Enter on the entry led to ${page.url()}`); return; }
  const ok = await page.$eval('[role="status"]', (el) => el.textContent).catch(() => null);
  if (!ok || !ok.includes('staat ongewijzigd')) fail(`${who}: the entry's proof did not check: ${ok}`);
  if ((await page.content()).includes('KLOPT NIET')) fail(`${who}: a check of the entry's proof failed`);
  await axeCheck(page, `${who}-privacy-auditlog-regel`);
  await shoot(page, `${who}-privacy-auditlog-regel`);
  console.log(`  ${who}: reached ${href} with the keyboard; the console checked its proof`);
}

/** Sends the export form as the browser would (its cookie and token) and checks the file. */
async function exportDownload(page, base, who) {
  await page.goto(`${base}privacy/exporteren`, { waitUntil: 'load' });
  const fields = await page.$eval('form#exporteren', (f) => [...new FormData(f).entries()]).catch(() => null);
  if (!fields) { fail(`${who}: no export form`); return; }
  const cookie = (await page.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const answer = await fetch(`${base}privacy/exporteren`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams(fields).toString(),
  });
  const disposition = answer.headers.get('content-disposition') || '';
  const body = await answer.text();
  if (answer.status !== 200 || !disposition.startsWith('attachment')) {
    fail(`${who}: the export answered ${answer.status} (${disposition}): ${body.slice(0, 200)}`);
  } else if (!body.startsWith('seq,')) {
    fail(`${who}: the export is no CSV with a header line`);
  } else {
    console.log(`  ${who}: the export downloaded ${body.split('\n').length - 1} lines as ${disposition}`);
  }
}

/** Filters the audit log on refusals (the filter form, as a person sends it) and checks that
 * every row shown is one. */
async function auditFilter(page, base, who) {
  await page.goto(`${base}privacy/auditlog`, { waitUntil: 'load' });
  await page.select('#besluit', 'DENY');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.$eval('form[action="/privacy/auditlog"]', (f) => f.requestSubmit())]);
  const decisions = await page.$$eval('tbody tr td:nth-child(6)', (tds) => tds.map((td) => td.textContent.trim()));
  if (!new URL(page.url()).search.includes('besluit=DENY')) fail(`${who}: the filter did not reach the URL (${page.url()})`);
  if (decisions.length === 0) fail(`${who}: the audit log filtered on refusals shows no row`);
  const other = decisions.filter((d) => d !== decisions[0]);
  if (other.length) fail(`${who}: the refusal filter shows other decisions too: ${[...new Set(decisions)]}`);
  await axeCheck(page, `${who}-privacy-auditlog-gefilterd`);
  await shoot(page, `${who}-privacy-auditlog-gefilterd`);
  console.log(`  ${who}: the audit log filtered on refusals shows ${decisions.length} rows, all "${decisions[0]}"`);
}

/** Downloads the report's CSV the way the browser follows its link (its cookie) and checks it. */
async function reportCsv(page, base, who) {
  await page.goto(`${base}rapportage`, { waitUntil: 'load' });
  const href = await page.$eval('a[href="/rapportage.csv"]', (a) => a.href).catch(() => null);
  if (!href) { fail(`${who}: Rapportage has no CSV link`); return; }
  const cookie = (await page.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const answer = await fetch(href, { headers: { cookie } });
  const body = await answer.text();
  const type = answer.headers.get('content-type') || '';
  if (answer.status !== 200 || !type.startsWith('text/csv')) {
    fail(`${who}: the report's CSV answered ${answer.status} (${type})`);
  } else if (body.split('\n').filter((l) => l).length < 2) {
    fail(`${who}: the report's CSV has no rows`);
  } else {
    console.log(`  ${who}: the report's CSV downloaded, ${body.split('\n').filter((l) => l).length - 1} rows`);
  }
}

async function privacyExtras(page, base, links, who) {
  const paths = links.map((l) => new URL(l.href).pathname);
  if (paths.includes('/rapportage')) await reportCsv(page, base, who);
  if (paths.includes('/privacy/auditlog')) await auditFilter(page, base, who);
  if (paths.includes('/privacy/auditlog')) await entryProof(page, base, who);
  if (paths.includes('/privacy/exporteren')) await exportDownload(page, base, who);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const { demo, consoles } = await startDemo();
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--font-render-hinting=none'],
  });
  try {
    for (const [who, base] of Object.entries(consoles)) {
      if (who === PARTICIPANT) continue;
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      console.log(`console ${who} at ${base}`);
      const links = await visit(page, base, `${who}-start`);
      for (const link of links) {
        const pathName = new URL(link.href).pathname;
        if (pathName === '/') continue;
        if (!link.label) fail(`${who}: a menu link without text`);
        await visit(page, link.href, `${who}${pathName.replaceAll('/', '-')}`);
        await sendForms(page, base, pathName, who);
      }
      await keyboardWalk(page, base, links, who);
      await privacyExtras(page, base, links, who);
      await page.close();
    }
    if (consoles.leerplicht && consoles[PARTICIPANT]) await caseWalk(browser, consoles.leerplicht, consoles[PARTICIPANT]);
    else fail(`no console for leerplicht and ${PARTICIPANT}: ${Object.keys(consoles)}`);
  } finally {
    await browser.close();
    demo.kill('SIGINT');
    await new Promise((resolve) => demo.on('exit', resolve));
  }
  if (failures.length) {
    console.error(`${failures.length} failures`);
    process.exit(1);
  }
  console.log('browser test: every page passes axe (WCAG 2.1 A/AA) and the keyboard walk');
}

main().catch((e) => { console.error(e); process.exit(1); });
