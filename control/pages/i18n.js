// Words for people, in Chinese (zh-CN) or English, chosen from the browser's languages.
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
  err_unauthorized: "Please sign in again.", err_generic: "Something went wrong. Please try again.",
  reported: "Thank you. The operator has been told.",
  console: "Console", franchiseeId: "Your franchisee id", openFaults: "Open faults", noFaults: "None.", terminals: "Terminals",
  usage30: "Usage, last 30 days", byHour: "Energy by hour of day", byTerminal: "Energy by terminal", acknowledge: "Acknowledge",
  acknowledgedBy: "acknowledged", relayOn: "on", relayOff: "off", lastReading: "last reading", faultCount: "times",
  kind_on_current_out_of_range: "current out of range while charging", kind_off_current_leak: "current leaking while off",
  kind_scan_failure: "users cannot scan the code", kind_terminal_offline: "no telemetry", kind_voltage_out_of_range: "voltage out of range",
  kind_register_backwards: "meter went backwards", kind_power_mismatch: "power disagrees with V×I", kind_relay_on_without_session: "relay on without a session",
};
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
  err_unauthorized: "请重新登录。", err_generic: "出错了，请重试。",
  reported: "谢谢，已通知运营方。",
  console: "管理台", franchiseeId: "加盟商编号", openFaults: "未处理故障", noFaults: "暂无。", terminals: "充电桩",
  usage30: "近30天用量", byHour: "按小时电量", byTerminal: "按充电桩电量", acknowledge: "确认",
  acknowledgedBy: "已确认", relayOn: "通电", relayOff: "断电", lastReading: "最近读数", faultCount: "次",
  kind_on_current_out_of_range: "充电电流异常", kind_off_current_leak: "断电漏电", kind_scan_failure: "用户扫码失败",
  kind_terminal_offline: "无遥测数据", kind_voltage_out_of_range: "电压异常", kind_register_backwards: "电表倒退",
  kind_power_mismatch: "功率与电压电流不符", kind_relay_on_without_session: "无订单通电",
};

export const lang = (navigator.languages ?? [navigator.language]).some((l) => /^zh\b/i.test(l)) ? "zh-CN" : "en";
const words = lang === "zh-CN" ? zh : en;

/** Energy and money as people here read them. */
export const wh = (x) => `${new Intl.NumberFormat(lang, { maximumFractionDigits: 1 }).format(x)} Wh`;
export const yuan = (cents) => new Intl.NumberFormat(lang, { style: "currency", currency: "CNY" }).format(cents / 100);

/** The word for a key (the key itself if there is none, so a gap shows rather than hides). */
export const t = (key) => words[key] ?? en[key] ?? key;

/** Fills every element with data-t, and sets the document's language. */
export function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
}
