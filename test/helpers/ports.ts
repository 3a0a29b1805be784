export { freePort, freePortBlock, releasePortBlock } from "../../cli/index.ts";
