/** Written into image history and the daemon protocol hello. Keep in step with package.json. */
export const VERSION = '0.1.0';
