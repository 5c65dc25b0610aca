// chat_room.mjs — sockserv-chat's web page in a real browser.
//
// Debian's chromium (headless), driven by puppeteer-core; nothing is
// downloaded at run time. The script starts `sockserv-chat --web 0`, opens
// the page in two browser contexts (two people), and checks that:
//   - both join, see each other in the member list, and exchange messages;
//   - a sockserv-chatcli member (a terminal, driven through its stdin and
//     stdout) is in the same room, both ways;
//   - a name in use is refused on the page;
//   - an admin line typed on the server's stdin reaches the pages;
//   - a page that reloads rejoins under its name and chats on.
// It saves screenshots of the chat page (desktop and phone width) and of a
// sockserv-httpd directory listing to $SOCKSERV_CI_ARTIFACTS (default
// build/artifacts/). Bounded in time (TIME_LIMIT_MS); kills what it
// started, by PID.
//
//   npm ci && node chat_room.mjs [--bin-dir DIR] [--mode thread|coro]
//
// DIR holds sockserv-chat, sockserv-chatcli and sockserv-httpd (default:
// the build tree's examples, build/examples/...); --mode is
// sockserv-chat's (default thread). CHROMIUM names the
// browser (default /usr/bin/chromium). Exit status 0 when every check
// passed, 1 otherwise.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const TIME_LIMIT_MS = 120_000;
const STEP_MS = 15_000; // one expectation
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function binaries() {
  const given = option("--bin-dir", null);
  const dir = given ? path.resolve(given) : null;
  const pick = (name, sub) =>
    dir ? path.join(dir, name) : path.join(root, "build/examples", sub, name);
  return {
    chat: pick("sockserv-chat", "chatroom"),
    chatcli: pick("sockserv-chatcli", "chatroom"),
    httpd: pick("sockserv-httpd", "httpserver"),
  };
}

const started = []; // child processes, killed at the end whatever happens
let browser = null;
let tmp = null;
let checks = 0;

function ok(what) {
  checks++;
  console.log(`ok ${checks} - ${what}`);
}

function start(file, args, options = {}) {
  if (!fs.existsSync(file)) throw new Error(`${file}: not built`);
  const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], ...options });
  started.push(child);
  child.lines = [];
  child.waiters = [];
  let partial = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk) => {
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf("\n")) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      child.lines.push(line);
      for (const w of child.waiters.slice()) w();
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => process.stderr.write(`[${path.basename(file)}] ${d}`));
  return child;
}

// Resolves with the first line (from the start) that matches; rejects
// after STEP_MS.
function lineFrom(child, match, what) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const found = child.lines.find((l) => match(l));
      if (found === undefined) return false;
      clearTimeout(timer);
      child.waiters = child.waiters.filter((w) => w !== look);
      resolve(found);
      return true;
    };
    const timer = setTimeout(() => {
      child.waiters = child.waiters.filter((w) => w !== look);
      reject(new Error(`no line: ${what}; got:\n  ${child.lines.join("\n  ")}`));
    }, STEP_MS);
    if (!look()) child.waiters.push(look);
  });
}

async function waitForFile(file, lines) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    try {
      const numbers = fs.readFileSync(file, "utf8").trim().split("\n").map(Number);
      if (numbers.length >= lines && numbers.every((n) => n > 0)) return numbers;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${file}: no port written`);
}

// The text of every log entry on a page.
const logOf = (page) =>
  page.$$eval("#log li", (items) => items.map((li) => li.textContent));
const membersOf = (page) =>
  page.$$eval("#members li", (items) => items.map((li) => li.textContent));

async function expectLog(page, text, who) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent === t),
    { timeout: STEP_MS }, text,
  ).catch(async () => {
    throw new Error(`${who}: no "${text}" in the log: ${JSON.stringify(await logOf(page))}`);
  });
}

async function expectMembers(page, names, who) {
  await page.waitForFunction(
    (want) => {
      const got = [...document.querySelectorAll("#members li")].map((li) => li.textContent);
      return got.length === want.length && want.every((n) => got.includes(n));
    },
    { timeout: STEP_MS }, names,
  ).catch(async () => {
    throw new Error(`${who}: members ${JSON.stringify(await membersOf(page))}, ` +
                    `expected ${JSON.stringify(names)}`);
  });
}

async function join(page, name) {
  await page.type("#name", name);
  await page.click("#join");
  await page.waitForFunction(
    (n) => document.querySelector("#status").textContent === "online as " + n,
    { timeout: STEP_MS }, name,
  );
}

async function say(page, text) {
  await page.type("#text", text);
  await page.click("#send");
}

async function chatRoom(bin, artifacts) {
  const portFile = path.join(tmp, "chat.port");
  const mode = option("--mode", "thread");
  const chat = start(bin.chat, ["--mode", mode, "--web", "0", "--port-file", portFile, "0"]);
  const [tcpPort, webPort] = await waitForFile(portFile, 2);
  const banner = await lineFrom(chat, (l) => l.includes("open http://"), "the URL banner");
  const url = banner.match(/open (http:\S+)/)[1];
  ok(`sockserv-chat --mode ${mode} prints the URL to open: ${url}`);
  if (!url.endsWith(`:${webPort}/`)) throw new Error(`URL ${url} is not port ${webPort}`);

  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--lang=en-US"],
    protocolTimeout: STEP_MS * 2,
  });
  const open = async () => {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") console.error(`console: ${m.text()}`); });
    await page.setViewport({ width: 1000, height: 700 });
    await page.goto(url, { waitUntil: "load", timeout: STEP_MS });
    return page;
  };

  const alice = await open();
  const bob = await open();
  await join(alice, "alice");
  await join(bob, "bob");
  await expectLog(alice, "bob joined", "alice");
  await expectMembers(alice, ["alice", "bob"], "alice");
  await expectMembers(bob, ["alice", "bob"], "bob");
  ok("two pages join and see each other");

  const carol = start(bin.chatcli, ["127.0.0.1", String(tcpPort), "carol"]);
  await expectLog(alice, "carol joined", "alice");
  await expectMembers(bob, ["alice", "bob", "carol"], "bob");
  ok("a sockserv-chatcli member joins the same room");

  await say(alice, "hello from alice, 你好 <b>not bold</b>");
  await expectLog(bob, "alicehello from alice, 你好 <b>not bold</b>", "bob");
  await lineFrom(carol, (l) => l === "<alice> hello from alice, 你好 <b>not bold</b>",
                 "carol hears alice");
  const bold = await bob.$$eval("#log b", (b) => b.length);
  if (bold !== 0) throw new Error("markup from a message was rendered");
  ok("a page's message reaches the other page and the terminal, as text");

  carol.stdin.write("hi from the terminal\n");
  await expectLog(alice, "carolhi from the terminal", "alice");
  await expectLog(bob, "carolhi from the terminal", "bob");
  ok("the terminal's message reaches both pages");

  await say(bob, "bob here");
  await expectLog(alice, "bobbob here", "alice");
  await lineFrom(carol, (l) => l === "<bob> bob here", "carol hears bob");
  ok("the second page's message reaches the first page and the terminal");

  chat.stdin.write("the room closes at nine\n");
  await expectLog(alice, "[admin]the room closes at nine", "alice");
  await expectLog(bob, "[admin]the room closes at nine", "bob");
  ok("an admin line reaches the pages");

  const intruder = await open();
  await intruder.type("#name", "carol");
  await intruder.click("#join");
  await intruder.waitForFunction(
    () => document.querySelector("#error").textContent.includes("taken"),
    { timeout: STEP_MS });
  await intruder.close();
  ok("a name in use (the terminal's) is refused on the page");

  await bob.reload({ waitUntil: "load", timeout: STEP_MS });
  await bob.waitForFunction(
    () => document.querySelector("#status").textContent === "online as bob",
    { timeout: STEP_MS });
  await expectLog(alice, "bob left (quit)", "alice");
  await lineFrom(carol, (l) => l === "* bob left (quit)", "carol sees bob leave");
  await expectMembers(bob, ["alice", "bob", "carol"], "bob after reload");
  await expectMembers(alice, ["alice", "bob", "carol"], "alice");
  await say(bob, "back again");
  await expectLog(alice, "bobback again", "alice");
  await lineFrom(carol, (l) => l === "<bob> back again", "carol hears bob again");
  await say(alice, "welcome back");
  await expectLog(bob, "alicewelcome back", "bob");
  ok("a page that reloads rejoins under its name and chats on");

  fs.mkdirSync(artifacts, { recursive: true });
  await alice.screenshot({ path: path.join(artifacts, "chat-page.png") });
  // A phone's width (isMobile would make puppeteer reload the page).
  await bob.setViewport({ width: 390, height: 760, deviceScaleFactor: 2 });
  await bob.screenshot({ path: path.join(artifacts, "chat-page-phone.png") });
  ok(`screenshots of the chat page in ${artifacts}`);

  carol.stdin.end(); // end of input: QUIT
  await expectLog(alice, "carol left (quit)", "alice");
  chat.kill("SIGTERM");
  await expectLog(alice, "the server is shutting down", "alice");
  const status = await new Promise((r) => chat.exitCode !== null ? r(chat.exitCode) : chat.on("exit", r));
  if (status !== 0) throw new Error(`sockserv-chat exited with ${status}`);
  ok("SIGTERM: the pages hear the shutdown, the server exits 0");
}

async function listing(bin, artifacts) {
  const dir = path.join(tmp, "files");
  fs.mkdirSync(path.join(dir, "docs"), { recursive: true });
  fs.writeFileSync(path.join(dir, "README.md"), "# hello\n");
  fs.writeFileSync(path.join(dir, "聊天室.txt"), "你好\n".repeat(100));
  fs.writeFileSync(path.join(dir, "data.bin"), Buffer.alloc(123456));
  fs.writeFileSync(path.join(dir, "<script>.html"), "<p>escaped?</p>\n");
  const portFile = path.join(tmp, "httpd.port");
  start(bin.httpd, ["-q", "-b", "127.0.0.1", "-d", dir, "--port-file", portFile, "0"]);
  const [port] = await waitForFile(portFile, 1);
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 600 });
  const response = await page.goto(`http://127.0.0.1:${port}/`, { waitUntil: "load", timeout: STEP_MS });
  if (response.status() !== 200) throw new Error(`listing: ${response.status()}`);
  const text = await page.evaluate(() => document.body.innerText);
  for (const name of ["README.md", "聊天室.txt", "docs/", "<script>.html"])
    if (!text.includes(name)) throw new Error(`listing lacks ${name}: ${text}`);
  await page.screenshot({ path: path.join(artifacts, "httpd-listing.png"), fullPage: true });
  ok(`screenshot of a sockserv-httpd directory listing in ${artifacts}`);
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  browser = null;
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const gone = await Promise.race([
        new Promise((r) => child.on("exit", () => r(true))),
        new Promise((r) => setTimeout(() => r(false), 5000)),
      ]);
      if (!gone) child.kill("SIGKILL");
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

async function main() {
  const bin = binaries();
  const artifacts = path.resolve(process.env.SOCKSERV_CI_ARTIFACTS || path.join(root, "build/artifacts"));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sockserv-browser-"));
  const limit = setTimeout(() => {
    console.error(`not ok - time limit of ${TIME_LIMIT_MS / 1000} s reached`);
    cleanup().finally(() => process.exit(1));
  }, TIME_LIMIT_MS);
  let status = 0;
  try {
    await chatRoom(bin, artifacts);
    await listing(bin, artifacts);
    console.log(`# all ${checks} checks passed`);
  } catch (e) {
    console.error(`not ok - ${e.stack || e}`);
    status = 1;
  } finally {
    clearTimeout(limit);
    await cleanup();
  }
  process.exit(status);
}

main();
