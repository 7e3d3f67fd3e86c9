/** Extensions as the API shows them (GET /api/v1/extensions). */

export interface ExtensionView {
  name: string;
  version: string;
  files: number;
  bytes: number;
  addedAt: string;
  builtIn: boolean;
}
