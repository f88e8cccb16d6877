"""Word pools the generated dataset draws from: names, domains, cities. Data only."""
from __future__ import annotations

FIRST_NAMES = (
    "Aarav", "Aditi", "Aditya", "Akash", "Amit", "Ananya", "Anil", "Anjali", "Arjun", "Asha",
    "Ayesha", "Deepak", "Divya", "Farhan", "Gaurav", "Harsh", "Ishaan", "Kavya", "Kiran", "Lakshmi",
    "Manish", "Meera", "Mohit", "Neha", "Nikhil", "Pooja", "Priya", "Rahul", "Rajesh", "Ravi",
    "Rohan", "Sanjay", "Sara", "Shreya", "Sneha", "Sunil", "Tanvi", "Varun", "Vikram", "Zoya",
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Daniel", "Karen", "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Emily", "Paul", "Laura",
    "Wei", "Li", "Mei", "Jun", "Hiro", "Yuki", "Min-jun", "Ji-woo", "Ahmed", "Fatima", "Omar",
    "Layla", "Carlos", "Maria", "Jose", "Lucia", "Pedro", "Sofia", "Luca", "Giulia", "Lukas",
    "Hannah", "Noah", "Emma", "Liam", "Olivia", "Ethan", "Ava", "Lucas", "Mia", "Chloe", "Leo",
)
LAST_NAMES = (
    "Sharma", "Verma", "Gupta", "Singh", "Kumar", "Patel", "Shah", "Mehta", "Iyer", "Nair",
    "Reddy", "Rao", "Das", "Bose", "Chatterjee", "Banerjee", "Mukherjee", "Joshi", "Kulkarni",
    "Desai", "Pillai", "Menon", "Agarwal", "Bansal", "Malhotra", "Kapoor", "Khanna", "Chopra",
    "Khan", "Ansari", "Qureshi", "Fernandes", "D'Souza", "Smith", "Johnson", "Williams", "Brown",
    "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green",
    "Chen", "Wang", "Zhang", "Liu", "Tanaka", "Sato", "Kim", "Park", "Nguyen", "Tran", "Haddad",
    "Rahman", "Silva", "Santos", "Rossi", "Russo", "Muller", "Schmidt", "Schneider", "Fischer",
    "Dubois", "Moreau", "Novak", "Kowalski", "Ivanov", "Okafor", "Mensah", "Abebe", "Schwartz",
)
# (domain, weight in %). Corporate domains are made up but look like real ones.
CONSUMER_DOMAINS = (
    ("gmail.com", 34.0), ("yahoo.com", 7.0), ("yahoo.co.in", 3.0), ("outlook.com", 5.0),
    ("hotmail.com", 5.0), ("icloud.com", 3.0), ("rediffmail.com", 2.0), ("live.com", 1.0),
    ("aol.com", 0.6), ("protonmail.com", 0.6), ("zoho.com", 0.4),
)
CORPORATE_DOMAINS = (
    "northwindtraders.com", "contoso.in", "fabrikam.co", "globexcorp.com", "initech.io",
    "lumenlogistics.com", "kestrelpay.in", "brightlane.io", "tatvaretail.in", "bluepeak.com",
    "ironbridge.co.in", "suncrestfoods.com", "vertexlabs.ai", "harbourbank.com", "orchidhealth.in",
    "quantafin.com", "riverstone.edu", "mapleworks.ca", "zenithmotors.in", "coralinsure.com",
    "saffronstudios.in", "pinnacleinfra.com", "arcadiatravel.com", "novaedu.org", "meridianhr.com",
    "cobaltsystems.io", "evergreenagri.in", "falconfreight.com", "hexaware-demo.com", "lotuspharma.in",
    "stellarsoft.dev", "urbanloom.com", "willowcare.org", "yellowkite.in", "apexbuild.co",
    "granitecap.com", "indigoedge.in", "junipermedia.com", "kaveriexports.in", "luminapay.com",
)
CORPORATE_SHARE = 27.0  # % of addresses at a company domain
TYPO_DOMAINS = ("gmial.com", "yaho.com", "hotmial.com", "gmal.com", "outlok.com", "gamil.com",
                "yahooo.com", "gmail.con")
TYPO_SHARE = 2.0
DISPOSABLE_DOMAINS = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com",
                      "tempmail.dev", "trashmail.com")
DISPOSABLE_SHARE = 1.8
ROLE_LOCALS = ("info", "support", "sales", "admin", "contact", "hello", "billing", "marketing",
               "office", "hr", "careers", "team")
CITIES = ("Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai", "Pune", "Kolkata", "Ahmedabad",
          "Jaipur", "Kochi", "Lucknow", "Indore", "Singapore", "Dubai", "London", "New York",
          "San Francisco", "Jakarta", "Sydney", "Toronto")
CUSTOMER_TYPES = ("Bronze", "Silver", "Gold", "Platinum")
PLATFORMS = ("Android", "iOS", "Web")
