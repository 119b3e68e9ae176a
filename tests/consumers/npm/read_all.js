// Reads every Statuspage document of one Beacon page with the `statuspage.io` npm client, unchanged but for
// its base URL, and prints what it got as one JSON object keyed by endpoint. Usage: node read_all.js PAGE_URL
'use strict';
const {Statuspage} = require('statuspage.io');

async function main(pageUrl) {
  const client = new Statuspage('beacon');
  client.setApiUrl(pageUrl);
  const api = client.api;
  const read = {
    'summary.json': await api.getSummary(),
    'status.json': await api.getStatus(),
    'components.json': await api.getComponents(),
    'incidents.json': await api.incidents.getAll(),
    'incidents/unresolved.json': await api.incidents.getUnresolved(),
    'scheduled-maintenances.json': await api.scheduledMaintenances.getAll(),
    'scheduled-maintenances/upcoming.json': await api.scheduledMaintenances.getUpcoming(),
    // 3.3.8's getActive() asks for upcoming.json (its ACTIVE_JSON constant is a copy of UPCOMING_JSON), so the
    // eighth document is read through the client's own HTTP instance, as a user of this version has to.
    'scheduled-maintenances/active.json': (await client.apiClient.get('/api/v2/scheduled-maintenances/active.json')).data,
  };
  process.stdout.write(JSON.stringify(read));
}

main(process.argv[2]).catch(error => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
