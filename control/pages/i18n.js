// @ts-check
// Words for people, in Chinese (zh-CN) or English, chosen from the browser's languages.

/** @typedef {string | { one?: string, other: string }} Word  a plural word has a form per Intl.PluralRules category, {n} the number */

/** @type {Record<string, Word>} */
const en = {
  title: "Charge", terminal: "Terminal", state: "State", priceNow: "Price now", signIn: "Sign in", userId: "Your user id",
  signInButton: "Sign in", choose: "What would you like?", target: "Charge until", energy: "energy (Wh)", duration: "time (minutes)",
  amount: "amount (yuan)", value: "Value", payment: "Payment", prepaid: "prepaid from my wallet", postpaid: "pay afterwards",
  start: "Start charging", charging: "Charging", energySoFar: "Energy", costSoFar: "Cost so far", elapsed: "Time", power: "Power",
  stop: "Stop", receipt: "Receipt", fee: "Fee", report: "Report a problem with this code",
  available: "available", busy: "in use", faulted: "out of order", offline: "not reachable",
  perKwh: "per kWh", perHour: "per hour", noPrice: "no tariff in force",
  authorizing: "Checking the terminal…", active: "Charging. You can stop at any time.", stopping: "Stopping…",
  completed: "Done. Thank you!", reason_target_reached: "The target was reached.", reason_user_stop: "You stopped the charge.",
  reason_fault: "The terminal stopped for safety.", reason_credit_exhausted: "Your credit ran out.",
  reason_terminal_offline: "The terminal stopped answering; you pay only for what it delivered.", reason_admin: "Stopped by the operator.",
  reason_limit: "The terminal stopped at its own safety limit; you pay only for what it delivered.",
  failed_handshake: "The terminal could not confirm who it is, so it was not switched on. Nothing was charged; any prepaid amount is back in your wallet.",
  err_terminal_busy: "Someone is using this terminal. Please try again when it is free.",
  err_terminal_faulted: "This terminal is out of order and has been reported. Please use another one.",
  err_terminal_offline: "This terminal cannot be reached right now. Please use another one.",
  err_insufficient_balance: "Your balance is too low for this. Please top up or choose a smaller target.",
  err_credit_exhausted: "Your credit is used up. Please top up first.",
  err_no_tariff: "This terminal has no price set yet. Please use another one.",
  err_terminal_not_found: "This code does not belong to a terminal we know.",
  err_terminal_maintenance: "This terminal is being serviced. Please use another one.",
  err_unauthorized: "Please sign in again.", err_generic: "Something went wrong. Please try again.",
  err_forbidden: "This account may not do that. Please sign in with the right one.",
  err_invalid_id: "Ids are 1 to 64 letters, digits, _ or -. Please check what you typed.",
  err_invalid_request: "Something you entered was not accepted. Please check it and try again.",
  err_invalid_target: "Please enter a positive target within the limits.",
  err_rate_limited: "Too many tries in a short time. Please wait a moment and try again.",
  err_unavailable: "The service is busy or being repaired. Please try again in a minute.",
  err_network: "No connection to the service. Please check your network and try again.",
  err_not_found: "This was not found. It may have been removed.",
  err_session_ended: "This charge has already ended.",
  err_fault_not_open: "This fault is no longer open.",
  err_demo_off: "Sign-in here is not available. Please use the operator's app.",
  reported: "Thank you. The operator has been told.",
  idHint: "1 to 64 letters, digits, _ or -",
  mine_authorizing: "in use: starting your charge", mine_active: "in use: your charge", mine_stopping: "in use: stopping your charge",
  maintenance: "being serviced",
  chargeAgain: "Charge again", signOut: "Sign out", signedOut: "You are signed out.",
  feeNone: "Nothing to pay: no energy was delivered.",
  feeUnderCent: "Nothing to pay: this charge cost less than half a cent (¥0.005), and fees are rounded to the nearest cent.",
  noTerminals: "You have no terminals yet. When the operator registers a terminal for you, it appears here.",
  usageEmpty: "No charging in the last 30 days.", hour: "hour of day", hourChart: "Energy by hour of day, highest {max} at {hour}",
  console: "Console", franchiseeId: "Your franchisee id", openFaults: "Open faults", noFaults: "None.", terminals: "Terminals",
  usage30: "Usage, last 30 days", byHour: "Energy by hour of day", byTerminal: "Energy by terminal", acknowledge: "Acknowledge",
  acknowledgedBy: "acknowledged", relayOn: "on", relayOff: "off", lastReading: "last reading",
  faultCount: { one: "seen once", other: "seen {n} times" },
  kind_on_current_out_of_range: "current out of range while charging", kind_off_current_leak: "current leaking while off",
  kind_scan_failure: "users cannot scan the code", kind_terminal_offline: "no telemetry", kind_voltage_out_of_range: "voltage out of range",
  kind_register_backwards: "meter went backwards", kind_power_mismatch: "power disagrees with V×I", kind_relay_on_without_session: "relay on without a session",
  retired: "retired", backAt: "expected back {when}", maintenanceReason: "reason",
  err_terminal_retired: "This terminal is no longer in service. Please use another one.",
  err_user_retired: "This account is closed. Please contact the operator.",
  err_has_active_terminals: "Retire its terminals first.", err_invalid_cursor: "The list changed. Please reload the page.",
  admin: "Administration", adminToken: "Admin token", adminTokenHint: "Print one with: npm run token -- --role admin --sub <you> --ttl 8h",
  users: "Users", tariffs: "Tariffs", auditLog: "Audit log", location: "Location", balance: "Balance", debt: "Debt", creditLimit: "Credit limit",
  takeOut: "Take out of service", putBack: "Back in service", reasonPrompt: "Why is this terminal out of service?",
  version: "Version", effectiveFrom: "in force from", periods: "Periods", at: "When", who: "Who", what: "What", object: "Object",
  more: "More", noneYet: "None yet.", region: "Region", franchisee: "Franchisee",
};
/** @type {Record<string, Word>} */
const zh = {
  title: "充电", terminal: "充电桩", state: "状态", priceNow: "当前价格", signIn: "登录", userId: "用户编号",
  signInButton: "登录", choose: "请选择", target: "充到", energy: "电量（瓦时）", duration: "时长（分钟）",
  amount: "金额（元）", value: "数值", payment: "支付方式", prepaid: "钱包预付", postpaid: "先充后付",
  start: "开始充电", charging: "充电中", energySoFar: "电量", costSoFar: "当前费用", elapsed: "时长", power: "功率",
  stop: "停止", receipt: "账单", fee: "费用", report: "报告此二维码有问题",
  available: "空闲", busy: "使用中", faulted: "故障", offline: "离线",
  perKwh: "每千瓦时", perHour: "每小时", noPrice: "暂无电价",
  authorizing: "正在验证充电桩…", active: "正在充电，可随时停止。", stopping: "正在停止…",
  completed: "充电完成，谢谢！", reason_target_reached: "已达到目标。", reason_user_stop: "您已停止充电。",
  reason_fault: "充电桩出于安全原因已停止。", reason_credit_exhausted: "您的额度已用完。",
  reason_terminal_offline: "充电桩失去联系，仅按已充电量计费。", reason_admin: "运营方已停止。",
  reason_limit: "充电桩已达到自身安全上限并停止，仅按已充电量计费。",
  failed_handshake: "充电桩身份验证未通过，未通电。未产生费用，预付款已退回钱包。",
  err_terminal_busy: "该充电桩正在使用，请稍后再试。",
  err_terminal_faulted: "该充电桩故障，已上报，请使用其他充电桩。",
  err_terminal_offline: "该充电桩暂时无法连接，请使用其他充电桩。",
  err_insufficient_balance: "余额不足，请充值或选择较小的目标。",
  err_credit_exhausted: "额度已用完，请先充值。",
  err_no_tariff: "该充电桩尚未定价，请使用其他充电桩。",
  err_terminal_not_found: "无法识别该二维码对应的充电桩。",
  err_terminal_maintenance: "该充电桩正在维护，请使用其他充电桩。",
  err_unauthorized: "请重新登录。", err_generic: "出错了，请重试。",
  err_forbidden: "此账号无权进行该操作，请使用正确的账号登录。",
  err_invalid_id: "编号为 1 至 64 位字母、数字、_ 或 -，请检查输入。",
  err_invalid_request: "输入的内容未被接受，请检查后重试。",
  err_invalid_target: "请输入范围内的正数目标。",
  err_rate_limited: "尝试过于频繁，请稍候再试。",
  err_unavailable: "服务繁忙或正在维护，请一分钟后再试。",
  err_network: "无法连接服务，请检查网络后重试。",
  err_not_found: "未找到，可能已被删除。",
  err_session_ended: "本次充电已结束。",
  err_fault_not_open: "该故障已不再是未处理状态。",
  err_demo_off: "此处暂不支持登录，请使用运营方的应用。",
  reported: "谢谢，已通知运营方。",
  idHint: "1 至 64 位字母、数字、_ 或 -",
  mine_authorizing: "正在为您启动", mine_active: "正在为您充电", mine_stopping: "正在为您停止",
  maintenance: "维护中",
  chargeAgain: "再充一次", signOut: "退出登录", signedOut: "您已退出登录。",
  feeNone: "无需付费：未输出电量。",
  feeUnderCent: "无需付费：本次费用不足半分（¥0.005），按分四舍五入为 ¥0.00。",
  noTerminals: "您还没有充电桩。运营方为您登记充电桩后，会显示在这里。",
  usageEmpty: "近30天没有充电记录。", hour: "时", hourChart: "按小时电量，最高 {max}（{hour}）",
  console: "管理台", franchiseeId: "加盟商编号", openFaults: "未处理故障", noFaults: "暂无。", terminals: "充电桩",
  usage30: "近30天用量", byHour: "按小时电量", byTerminal: "按充电桩电量", acknowledge: "确认",
  acknowledgedBy: "已确认", relayOn: "通电", relayOff: "断电", lastReading: "最近读数",
  faultCount: { other: "出现 {n} 次" },
  kind_on_current_out_of_range: "充电电流异常", kind_off_current_leak: "断电漏电", kind_scan_failure: "用户扫码失败",
  kind_terminal_offline: "无遥测数据", kind_voltage_out_of_range: "电压异常", kind_register_backwards: "电表倒退",
  kind_power_mismatch: "功率与电压电流不符", kind_relay_on_without_session: "无订单通电",
  retired: "已停用", backAt: "预计 {when} 恢复", maintenanceReason: "原因",
  err_terminal_retired: "该充电桩已停用，请使用其他充电桩。",
  err_user_retired: "该账户已关闭，请联系运营方。",
  err_has_active_terminals: "请先停用其下的充电桩。", err_invalid_cursor: "列表已变化，请刷新页面。",
  admin: "运营管理", adminToken: "管理员令牌", adminTokenHint: "生成方法：npm run token -- --role admin --sub <您的编号> --ttl 8h",
  users: "用户", tariffs: "电价", auditLog: "审计日志", location: "位置", balance: "余额", debt: "欠款", creditLimit: "信用额度",
  takeOut: "停机维护", putBack: "恢复服务", reasonPrompt: "该充电桩停机维护的原因？",
  version: "版本", effectiveFrom: "生效时间", periods: "时段", at: "时间", who: "操作人", what: "操作", object: "对象",
  more: "更多", noneYet: "暂无。", region: "区域", franchisee: "加盟商",
};

const languages = navigator.languages?.length ? navigator.languages : [navigator.language];
export const lang = languages.some((l) => /^zh\b/i.test(l)) ? "zh-CN" : "en";
/** The browser's own locale for dates and numbers (en-GB stays en-GB), within the language of the words. */
export const locale = languages.find((l) => (lang === "zh-CN" ? /^zh\b/i : /^en\b/i).test(l)) ?? lang;
const words = lang === "zh-CN" ? zh : en;

/** Energy and money as people here read them. */
export const wh = (/** @type {number} */ x) => `${new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(x)} Wh`;
export const yuan = (/** @type {number} */ cents) => new Intl.NumberFormat(locale, { style: "currency", currency: "CNY" }).format(cents / 100);

/** @param {string} key */
const word = (key) => words[key] ?? en[key];
/** Whether there are words for a key. */
export const has = (/** @type {string} */ key) => word(key) !== undefined;

/**
 * The word for a key (the key itself if there is none, so a gap shows rather than hides), with
 * {name} filled from vars.
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
export function t(key, vars = {}) {
  const w = word(key) ?? key;
  const s = typeof w === "string" ? w : w.other;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

const plurals = new Intl.PluralRules(locale);
/**
 * A counted word in the right plural form ("seen once", "seen 2 times"), chosen by Intl.PluralRules.
 * @param {string} key
 * @param {number} n
 */
export function plural(key, n) {
  const w = word(key) ?? key;
  const forms = typeof w === "string" ? { other: w } : w;
  const cat = /** @type {"one" | "other"} */ (plurals.select(n));
  return (forms[cat] ?? forms.other).replace("{n}", new Intl.NumberFormat(locale).format(n));
}

const dayFmt = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(locale, { dateStyle: "full", timeStyle: "long" });
/**
 * A moment, short: the time alone when it is today, else the date and minute, in the browser's
 * locale and time zone; as a <time> whose title is the full date.
 * @param {number} ms
 * @param {number} [now]
 */
export function when(ms, now = Date.now()) {
  const d = new Date(ms);
  const today = d.toDateString() === new Date(now).toDateString();
  const el = document.createElement("time");
  el.dateTime = d.toISOString();
  el.title = fullFmt.format(d);
  el.textContent = (today ? dayFmt : dateFmt).format(d);
  return el;
}

/**
 * An error said in words, never its code: the words for its code, else for its HTTP status, else
 * a general sentence. `context` names codes that read better for this form (sign-in: invalid_id).
 * @param {unknown} e
 * @param {Record<string, string>} [context]  code → word key
 */
export function errorWords(e, context = {}) {
  const err = /** @type {{ code?: unknown, status?: unknown }} */ (e ?? {});
  const code = typeof err.code === "string" ? err.code : e instanceof TypeError ? "network" : "generic";
  const status = typeof err.status === "number" ? err.status : 0;
  const key = context[code] ?? `err_${code}`;
  if (has(key)) return t(key);
  if (code.endsWith("_not_found") || status === 404) return t("err_not_found");
  if (status === 401) return t("err_unauthorized");
  if (status === 403) return t("err_forbidden");
  if (status === 400) return t("err_invalid_request");
  if (status === 429) return t("err_rate_limited");
  if (status === 503 || status === 502 || status === 504) return t("err_unavailable");
  return t("err_generic");
}

/** Fills every element with data-t (and the title of each with data-t-title), and sets the document's language. */
export function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) if (el instanceof HTMLElement) el.textContent = t(el.dataset.t ?? "");
  for (const el of document.querySelectorAll("[data-t-title]")) if (el instanceof HTMLElement) el.title = t(el.dataset.tTitle ?? "");
}
