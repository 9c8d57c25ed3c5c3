/** @module The dashboard page, embedded in the binary as text; it holds no data until given the token. */
import page from "./dashboard/index.html" with { type: "text" };

export const dashboardHtml: string = page as unknown as string;
